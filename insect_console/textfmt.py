"""Plain-text formatting shared by the CLI and the console: times, durations, sizes, one-liners.

Pure functions, no rich and no textual, so they are tested on their own and `list` stays light.
Every timestamp we read (history records, the state file, the control socket) goes through
`parse_local`, the one place ISO text becomes the naive local time the engine works in.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

STATUS_SYMBOLS: dict[str, tuple[str, str, str]] = {
    # status: (symbol, short label, rich style the console draws it in)
    "success": ("✓", "success", "green"),
    "error": ("✗", "error", "bold red"),
    "timeout": ("◷", "timeout", "yellow"),
    "interrupted": ("↯", "interrupt", "magenta"),
    "skipped": ("»", "skipped", "dim"),
    "running": ("▶", "running", "bold cyan"),
}
"""Every status has a symbol as well as a colour, so a table reads under NO_COLOR."""
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def parse_local(value: Any) -> dt.datetime | None:
    """An ISO timestamp as naive local time (aware values are converted), or None.

    >>> parse_local("2026-03-14T10:00:00")
    datetime.datetime(2026, 3, 14, 10, 0)
    """
    if not value or not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when


def iso_local(when: dt.datetime | None) -> str | None:
    """The inverse for the wire and the state file: naive local time to the second."""
    return when.isoformat(timespec="seconds") if when is not None else None


_DURATION_RE = re.compile(r"([0-9]{1,9})\s*([smhd]?)", re.IGNORECASE | re.ASCII)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: Any) -> int | None:
    """The inverse of `format_duration` for one unit: "90s", "15m", "2h", "1d", "90" or 90 in
    seconds; None when it is no such thing (the caller words the error for its field)."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        return None
    m = _DURATION_RE.fullmatch(str(text).strip())
    return int(m[1]) * _UNIT_SECONDS[m[2].lower()] if m else None


def format_duration(seconds: float) -> str:
    """A schedule's period: 3600 -> "1h", 5400 -> "1h30m", 90 -> "1m30s", 45 -> "45s"."""
    seconds = int(round(seconds))
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        value, seconds = divmod(seconds, size)
        if value:
            parts.append(f"{value}{unit}")
    return "".join(parts[:2])


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


def short_time(when: dt.datetime | None) -> str:
    """A timestamp for a CLI table: "2026-03-14 10:00:00", or "-"."""
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def last_run_text(last_run: dt.datetime | None, now: dt.datetime) -> str:
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


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_ON_SCREEN = {**{c: e for c, e in _CONTROL.items() if c != 0x09}, 0x0D: ""}
_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def printable(text: str) -> str:
    """Text from a job, with control characters shown escaped: no escape sequence reaches the terminal."""
    return text.translate(_CONTROL)


def terminal_safe(text: str) -> str:
    """Job text for the console's screen: colour codes (SGR) dropped, a carriage return dropped,
    a tab kept, every other control character shown escaped (an OSC title or clipboard write,
    a clear-screen or cursor move shows as text and does nothing)."""
    if text.isprintable():
        return text  # the usual line: nothing to do
    if "\x1b[" in text:
        text = _SGR.sub("", text)
    return text.translate(_ON_SCREEN)
