"""Pure formatting for the console's cells and lines (no textual; unit-tested on their own).

Every status has a symbol as well as a colour, so the table reads under NO_COLOR.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Any

from rich.text import Text

STATUS_SYMBOLS: dict[str, tuple[str, str, str]] = {
    # status: (symbol, short label, rich style)
    "success": ("✓", "success", "green"),
    "error": ("✗", "error", "bold red"),
    "timeout": ("◷", "timeout", "yellow"),
    "interrupted": ("↯", "interrupt", "magenta"),
    "skipped": ("»", "skipped", "dim"),
    "running": ("▶", "running", "bold cyan"),
}
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
_ATTRIBUTES = {"bold", "dim", "italic", "underline", "reverse", "strike", "not"}
_monochrome = False


def set_monochrome(on: bool) -> None:
    """Under NO_COLOR, colours are dropped from the styles made here (attributes stay).

    Textual's monochrome filter would turn red into a dark grey that vanishes on a dark
    background; bold and dim read fine without colour, and the symbols carry the meaning.
    """
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
    symbol, label, style = STATUS_SYMBOLS.get(status, ("?", status, ""))
    return Text(f"{symbol} {label}", style=tone(style))


def short_duration(seconds: float | None) -> str:
    """A countdown or elapsed time in at most 5 cells: 4s, 59s, 9m05s, 42m, 9h42m, 16h, 6d14h, 12d."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 36000:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 864000:
        return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
    return f"{s // 86400}d"


def run_duration(seconds: float | None) -> str:
    """A finished run's duration: 0.4s, 12.3s, 1m05s, 1h02m."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO timestamp as naive local time (aware values are converted), or None."""
    if not value or not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when


def next_run_cell(next_run: dt.datetime | None, now: dt.datetime, enabled: bool = True) -> Text:
    """ "10:05:00 4m59s" today, "Sun 00:00 2d03h" on another day; "off" when disabled."""
    if not enabled:
        return Text("off", style="dim")
    if next_run is None:
        return Text("—", style="dim")
    left = (next_run - now).total_seconds()
    when = next_run.strftime("%H:%M:%S") if next_run.date() == now.date() else next_run.strftime("%a %H:%M")
    return Text.assemble(when, " ", ("now" if left <= 0 else short_duration(math.ceil(left)), "bold"))  # 0.4 s to go reads "1s"


def last_run_cell(last_run: dt.datetime | None, now: dt.datetime) -> str:
    """The time today, else the day: "10:04:55" or "Mar 13"."""
    if last_run is None:
        return "—"
    if last_run.date() == now.date():
        return last_run.strftime("%H:%M:%S")
    return last_run.strftime("%b %d")


def clip(text: str, width: int) -> str:
    """Cut `text` to `width` cells with an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit in ("B", "K") else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"  # pragma: no cover


def sparkline(values: list[float], width: int) -> str:
    """Block characters scaled from the smallest to the largest of the last `width` values."""
    values = [v for v in values if v is not None][-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span <= 0:
        return SPARK_BLOCKS[0] * len(values)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / span * top)] for v in values)


def result_strip(statuses: list[str], width: int) -> Text:
    """The last `width` results as coloured symbols, oldest left, newest right."""
    text = Text()
    for status in statuses[-width:]:
        text.append(status_symbol(status), style=status_style(status))
    return text


def display_path(path: str | os.PathLike | None) -> str:
    """A path relative to the working directory when it is below it, else as given."""
    if not path:
        return "—"
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def one_line(text: str | None) -> str:
    """The first line of `text`, with a marker when there is more."""
    if not text:
        return ""
    first, _, rest = text.strip().partition("\n")
    return first + (" …" if rest.strip() else "")
