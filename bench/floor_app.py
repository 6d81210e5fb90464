"""The first-prompt floor: the least a typer + rich + prompt_toolkit program pays to show
a prompt, timed as `smtp-tutor learn 1` is (bench/run.py, a pseudo-terminal, up to
`smtp>`).

    python bench/floor_app.py learn 1

It imports what `learn` cannot do without (typer, rich's console, prompt_toolkit), lets
typer parse the same command line (with typer ≥ 0.2x that imports pydantic, as in any
typer program), prints one line through rich and asks at a prompt_toolkit prompt. No
lesson, no server: what is above this floor is the tutor's own start-up.
"""

from __future__ import annotations

import typer
from prompt_toolkit import PromptSession
from rich.console import Console

app = typer.Typer(add_completion=False)


@app.callback()
def root(plain: bool = typer.Option(False, "--plain")) -> None:
    """A root group, as the tutor's."""


@app.command()
def learn(lesson: str = typer.Argument(...)) -> None:
    Console().print(f"lesson {lesson}")
    PromptSession[str]().prompt("smtp> ")


if __name__ == "__main__":
    app()
