"""Single key presses from the terminal, without blocking: prompt_toolkit's input, raw mode.

`TerminalKeys.raw()` puts the terminal in raw mode (no echo, no line buffering, Ctrl-C
arrives as a key) and always restores it, on Ctrl-C and on exceptions too. `attach()`
calls back from the running asyncio loop whenever keys are ready, so the dashboard's
loop never blocks on input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from prompt_toolkit.input import create_input
from prompt_toolkit.key_binding import KeyPress
from prompt_toolkit.keys import Keys

_NAMES = {
    Keys.Up: "up",
    Keys.Down: "down",
    Keys.PageUp: "pageup",
    Keys.PageDown: "pagedown",
    Keys.Home: "home",
    Keys.End: "end",
    Keys.ControlM: "enter",  # Enter in raw mode sends CR
    Keys.ControlJ: "enter",  # some terminals send LF
    Keys.ControlC: "c-c",
    Keys.ControlD: "c-d",
    Keys.Escape: "escape",
    Keys.ControlH: "backspace",
}


def key_name(press: KeyPress) -> str:
    """ "up", "enter", "c-c", "escape", or the character typed ("q", "j", " ")."""
    key = press.key
    if isinstance(key, Keys):
        return _NAMES.get(key, "")
    return key


class TerminalKeys:
    def __init__(self, stdin: TextIO | None = None) -> None:
        self._input = create_input(stdin)

    @contextmanager
    def raw(self) -> Iterator[None]:
        with self._input.raw_mode():
            yield

    @contextmanager
    def attach(self, callback: Callable[[list[str]], None]) -> Iterator[None]:
        """Call `callback(keys)` from the running event loop whenever input arrives.

        `keys` may be empty: a lone Escape stays in the parser until `flush()`.
        """

        def ready() -> None:
            callback(self.read())

        with self._input.attach(ready):
            yield

    def read(self) -> list[str]:
        return [name for name in map(key_name, self._input.read_keys()) if name]

    def flush(self) -> list[str]:
        """A lone Escape waits in the parser (it may start a sequence): let it out."""
        return [name for name in map(key_name, self._input.flush_keys()) if name]
