"""How the commands' tables look: one style, fit for an 80-column terminal, and a legend under them.

Tables have no borders and no edge padding, so a row of figures fits 80 columns; names may fold,
figures never do. The legend is prose that the terminal wraps (never hard line breaks).
"""

from __future__ import annotations

COMPACT = {"box": None, "pad_edge": False, "header_style": "bold underline"}


def legend(text: str):
    """A table's legend: dim prose, wrapped by the console to its width."""
    from rich.text import Text

    return Text(text, style="dim")
