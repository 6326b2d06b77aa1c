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

# typer bundles its own copy of click: its usage errors are these classes, not click's.
from typer._click.core import Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from dragon.errors import DragonError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow logs its store's table creation and migrations at INFO: a user should see the story only.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

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


def _untyped_flags(command: typer.core.TyperCommand | typer.core.TyperGroup) -> None:
    """Flags take no value, so their help shows no type: typer would print `<bool>` beside `--help`,
    `--capture` or `--approval/--no-approval`, which reads as if they wanted one."""
    help_option = command.get_help_option(Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for subcommand in getattr(command, "commands", {}).values():
        _untyped_flags(subcommand)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one readable line and exit non-zero, never a traceback."""
    cli = typer.main.get_command(build_app())
    _untyped_flags(cli)
    try:
        exit_code = cli.main(args=argv, prog_name="dragon", standalone_mode=False)
        if isinstance(exit_code, int) and exit_code != 0:
            sys.exit(exit_code)
    except DragonError as error:
        # escape: messages name TOML tables like [tags.x], which rich would read as markup
        # soft_wrap: one line however narrow the terminal (it wraps, rich would break the line)
        err_console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except NoArgsIsHelpError as error:  # `dragon` or `dragon models` alone: the help, as a usage mistake
        text = error.ctx.get_help()  # typer's rich help prints itself and returns ""
        if text:
            print(text)
        sys.exit(2)
    except ClickException as error:
        sys.exit(_usage_error(error))
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        sys.exit(130)


def _usage_error(error: ClickException) -> int:
    """A usage mistake (unknown option, missing or bad value) as one line naming the command."""
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "dragon"
    err_console.print(
        f"[bold red]error:[/] {escape(message)} (see '{command} --help')", highlight=False, soft_wrap=True
    )
    return error.exit_code


if __name__ == "__main__":
    main()
