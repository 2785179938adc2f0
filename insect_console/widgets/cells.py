"""How the console draws a job's fields (renderables for its tables and bars): a status as
symbol, word and colour, a next run with its countdown, a strip of recent results: Rich `Text`
made from the pure text in `textfmt`.

Under NO_COLOR, colours are dropped from the styles made here (bold and dim stay): Textual's
monochrome filter would turn red into a dark grey that vanishes on a dark background, while
the symbols and words carry the meaning on their own.
"""

from __future__ import annotations

import datetime as dt
import math

from rich.text import Text

from insect_console.textfmt import STATUS_SYMBOLS, short_duration, terminal_safe

_ATTRIBUTES = {"bold", "dim", "italic", "underline", "reverse", "strike", "not"}
_monochrome = False


def set_monochrome(on: bool) -> None:
    global _monochrome
    _monochrome = on


def tone(style: str) -> str:
    """`style` as given, or without its colours under NO_COLOR ("bold red" -> "bold")."""
    if not _monochrome:
        return style
    return " ".join(word for word in style.split() if word in _ATTRIBUTES)


def status_symbol(status: str | None) -> str:
    return STATUS_SYMBOLS.get(status or "", ("?", "", ""))[0] if status else "·"


def status_style(status: str | None) -> str:
    return tone(STATUS_SYMBOLS.get(status or "", ("", "", ""))[2])


def status_text(status: str | None) -> Text:
    """ "✓ success", "✗ error" ... coloured; "· never" when a job has not run."""
    if not status:
        return Text("· never", style="dim")
    symbol, label, style = STATUS_SYMBOLS.get(status, ("?", terminal_safe(str(status)), ""))
    return Text(f"{symbol} {label}", style=tone(style))


def next_run_cell(next_run: dt.datetime | None, now: dt.datetime, enabled: bool = True) -> Text:
    """ "10:05:00 4m59s" today, "Sun 00:00 2d03h" on another day; "off" when disabled."""
    if not enabled:
        return Text("off", style="dim")
    if next_run is None:
        return Text("—", style="dim")
    left = (next_run - now).total_seconds()
    when = next_run.strftime("%H:%M:%S") if next_run.date() == now.date() else next_run.strftime("%a %H:%M")
    return Text.assemble(when, " ", ("now" if left <= 0 else short_duration(math.ceil(left)), "bold"))  # 0.4 s to go reads "1s"


def result_strip(statuses: list[str | None], width: int) -> Text:
    """The last `width` results as coloured symbols, oldest left, newest right."""
    text = Text()
    for status in statuses[-width:]:
        text.append(status_symbol(status), style=status_style(status))
    return text
