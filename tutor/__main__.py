"""`python -m tutor` runs the same command line as `smtp-tutor`.

The `smtp-tutor` script calls `run` from here, not `tutor.cli.main`: a spawned server
process runs the parent's script again (multiprocessing's spawn), and a script that
imports nothing at its top costs that process no typer, rich or prompt_toolkit.
"""


def run() -> None:
    from tutor.cli import main

    main()


if __name__ == "__main__":
    run()
