"""What typer costs `smtp-tutor learn 1` before its first screen, phase by phase.

    python bench/typer_probe.py learn 1     # prints one JSON object: milliseconds per phase

Run in a fresh interpreter each time (bench/run.py does, and takes the median). Phases,
each timed alone, in the order `smtp-tutor` meets them:

- `import typer`: typer and the click it carries;
- `import pydantic`: typer ≥ 0.2x converts every parameter through a pydantic
  `TypeAdapter`, so the first command line it parses imports pydantic and typer's module
  that builds the adapters (`typer._adapters`, where it exists): done here as a phase of
  its own, so that "parse" below is the work alone;
- `import tutor.cli`: the tutor's command definitions, beyond typer (the screens are
  imported later, by the command that needs them);
- build: `typer.main.get_command(…)`, typer's click command tree from the annotations,
  for the app `tutor.cli.main` hands typer (`app_for`: only the command the words name);
- parse: the root group and the chosen command read their arguments (every option's
  value converted), up to where the command's function would be called.

Nothing is run: no server, no screen. The sum of the typer phases (typer, pydantic,
build, parse) is what a command line written without typer could save at most.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _timed(phases: dict[str, float], name: str, action: Any) -> Any:
    start = time.perf_counter()
    result = action()
    phases[name] = (time.perf_counter() - start) * 1000
    return result


def import_pydantic() -> None:
    """pydantic as typer's parse imports it; nothing where typer does without it."""
    import importlib
    import importlib.util

    for name in ("pydantic", "typer._adapters"):
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def parse(group: Any, argv: list[str]) -> None:
    """Click's own steps before invoking: the group's context, then the command's."""
    with group.make_context("smtp-tutor", list(argv)) as ctx:
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, command, args = group.resolve_command(ctx, rest)
        with command.make_context(name, args, parent=ctx):
            pass


def main(argv: list[str]) -> int:
    phases: dict[str, float] = {}
    typer = _timed(phases, "import typer", lambda: __import__("typer"))
    _timed(phases, "import pydantic", import_pydantic)
    cli = _timed(phases, "import tutor.cli", lambda: __import__("tutor.cli").cli)
    app = cli.app_for(argv) if hasattr(cli, "app_for") else cli.app  # as main() builds it
    group = _timed(phases, "build", lambda: typer.main.get_command(app))
    _timed(phases, "parse", lambda: parse(group, argv))
    print(json.dumps(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["learn", "1"]))
