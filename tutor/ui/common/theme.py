"""Colour themes: the same screens on a dark terminal and on a white projector.

The views name colours by what they mean in a terminal's own palette: "yellow" for a
warning, "cyan" for a tip, "dim" for an aside, "green" for done. The dark theme leaves
those to the terminal. The light theme redraws every standard colour as a dark shade that
reads on white (no yellow or cyan text, nothing faint), at the one place where a rich
Console turns a style name into a Style, so every view follows without knowing about
themes and compound styles ("bold yellow") are covered too.

In 256-colour and true-colour terminals the shades come from the fixed 256-colour table
(the same on every terminal, unlike colours 0-15). A 16-colour terminal has no dark
yellow or cyan to rely on, so there yellow becomes magenta and cyan becomes blue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.color import Color, ColorType
from rich.console import Console
from rich.style import Style

THEMES = ("dark", "light")
DEFAULT_THEME = "dark"

# Standard colour numbers: 0-7 black, red, green, yellow, blue, magenta, cyan, white;
# 8-15 the bright versions of the same.
BLACK, RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, WHITE = range(8)
GREY = BLACK + 8  # bright black: grey in most palettes, too light on white


@dataclass(frozen=True)
class Palette:
    """How one theme redraws standard colours; anything not listed is left as it is."""

    text: Mapping[int, str]  # standard colour number (0-7, brights folded) -> colour
    background: Mapping[int, str] = field(default_factory=dict)
    faint: str | None = None  # what dim text becomes; None keeps the terminal's dim


# Every shade has at least 5.5:1 contrast on white (WCAG AA asks for 4.5:1).
_LIGHT_256 = Palette(
    text={
        RED: "color(124)",  # #af0000
        GREEN: "color(22)",  # #005f00
        YELLOW: "color(94)",  # #875f00, a dark amber
        BLUE: "color(25)",  # #005faf
        MAGENTA: "color(90)",  # #870087
        CYAN: "color(23)",  # #005f5f, a dark teal
        WHITE: "default",  # the terminal's own text colour
    },
    background={BLACK: "color(254)"},  # rich's code spans are "on black": light grey
    faint="color(240)",  # #585858
)
_LIGHT_16 = Palette(
    text={YELLOW: "magenta", CYAN: "blue", WHITE: "default"},
    background={BLACK: "default"},
    faint="default",
)


def light_palette(color_system: str | None) -> Palette:
    return _LIGHT_256 if color_system in ("256", "truecolor") else _LIGHT_16


def adapt(style: Style, palette: Palette) -> Style:
    """The style as this palette draws it: standard colours replaced, dim made solid."""
    changes: dict[str, Any] = {}
    if _standard(style.color):
        assert style.color is not None and style.color.number is not None
        number = style.color.number
        shade = palette.faint if number == GREY else palette.text.get(number % 8)
        if shade is not None:
            changes["color"] = shade
    if _standard(style.bgcolor):
        assert style.bgcolor is not None and style.bgcolor.number is not None
        shade = palette.background.get(style.bgcolor.number % 8)
        if shade is not None:
            changes["bgcolor"] = shade
    if style.dim and palette.faint is not None:
        changes["dim"] = False
        if style.color is None:
            changes["color"] = palette.faint
    return style + Style(**changes) if changes else style


def _standard(color: Color | None) -> bool:
    return color is not None and color.type == ColorType.STANDARD and color.number is not None


class ThemedConsole(Console):
    """A Console that draws every style through the light palette."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._palette: Palette | None = None  # Console.__init__ may already resolve styles
        self._adapted: dict[Style, Style] = {}
        super().__init__(*args, **kwargs)
        self._palette = light_palette(self.color_system)

    def get_style(self, name: str | Style, *, default: Style | str | None = None) -> Style:
        style = super().get_style(name, default=default)
        if self._palette is None:
            return style
        adapted = self._adapted.get(style)
        if adapted is None:
            adapted = self._adapted[style] = adapt(style, self._palette)
        return adapted
