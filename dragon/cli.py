"""The `dragon` command line.

The domain core owns the application object and the commands that need nothing
but the core (`check`, `simulate`). Every other package contributes its commands
through the `dragon.commands` entry point group (see pyproject.toml), so the
dependency arrows keep pointing one way: `dragon` never imports the packages
built on top of it.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.markup import escape

from dragon.errors import DragonError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

app = typer.Typer(
    name="dragon",
    help="YET Dragon: interpretable models and safe setpoint recommendations for the cumene oxidation plant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register_core_commands() -> None:
    from dragon import commands

    commands.register(app)


def _register_plugin_commands() -> None:
    for entry in entry_points(group="dragon.commands"):
        entry.load()(app)


def build_app() -> typer.Typer:
    _register_core_commands()
    _register_plugin_commands()
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one readable message and exit non-zero."""
    cli = build_app()
    try:
        exit_code = cli(args=argv, standalone_mode=False)
        if isinstance(exit_code, int) and exit_code != 0:
            sys.exit(exit_code)
    except DragonError as error:
        # escape: messages name TOML tables like [tags.x], which rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as error:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if isinstance(error, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
