"""How the commands' tables look: one style, fit for an 80-column terminal, and a legend under them.

Tables have no borders and no edge padding, so a row of figures fits 80 columns; names may fold,
figures never do. The legend is prose that the terminal wraps (never hard line breaks).
"""

from __future__ import annotations

import math

COMPACT = {"box": None, "pad_edge": False, "header_style": "bold underline"}


def legend(text: str):
    """A table's legend: dim prose, wrapped by the console to its width."""
    from rich.text import Text

    return Text(text, style="dim")


def figure(value: float | None, *, signed: bool = False, unit: str = "") -> str:
    """A number as a person reads it: four significant digits, a rounding residue (below 1e-6) as 0,
    then its unit; "-" for none."""
    if value is None or not math.isfinite(value):
        return "-"
    value = 0.0 if abs(value) < 1e-6 else value
    text = f"{value:+.4g}" if signed else f"{value:.4g}"
    return f"{text} {unit}" if unit else text
