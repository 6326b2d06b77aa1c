"""Command-line options every package's commands share, worded once."""

from __future__ import annotations

import typer


def json_flag(what: str) -> typer.models.OptionInfo:
    """`--json`: print JSON (`what`) on stdout instead of tables, for scripts. A flag takes no value,
    so its help shows no type (typer would print `<bool>`)."""
    return typer.Option(
        False, "--json", metavar="", help=f"Print JSON on stdout instead of tables (for scripts): {what}."
    )
