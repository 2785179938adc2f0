"""The output viewer: a bounded `Log` that follows the end until you scroll up, and file tails.

Scrolling up pauses following (`following` turns False) and new lines are counted; scrolling
back to the end (`end`) resumes. Memory is bounded by `max_lines`.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Log

MAX_LINES = 10_000
_BLOCK = 64 * 1024
_MAX_TAIL_BYTES = 8 << 20
"""A tail never reads more than this, even from a file of one endless line."""


class FollowLog(Log):
    """A `Log` that knows whether it follows the end, and counts lines that arrive while it doesn't."""

    BINDINGS = [Binding("end", "follow", "Follow")]

    following: reactive[bool] = reactive(True)
    unseen: reactive[int] = reactive(0)

    def __init__(self, max_lines: int = MAX_LINES, **kwargs) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, **kwargs)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_end = new_value >= self.max_scroll_y
        if at_end != self.following:
            self.following = at_end
        if at_end:
            self.unseen = 0

    def add_lines(self, lines: list[str]) -> None:
        """Append; follows the end if following, else counts the new lines."""
        if not lines:
            return
        if self.following:
            self.write_lines(lines, scroll_end=True)
        else:
            self.write_lines(lines, scroll_end=False)
            self.unseen += len(lines)

    def action_follow(self) -> None:
        self.follow()

    # Scrolling up is the intent to pause, even while an animated scroll is still on its way
    # (otherwise a batch of new lines arriving meanwhile would pull the view back to the end).

    def _pause(self) -> None:
        if self.max_scroll_y > 0:
            self.following = False

    def action_scroll_up(self) -> None:
        self._pause()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._pause()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._pause()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event) -> None:
        self._pause()  # Textual calls the base class's handler too (handlers run along the MRO)

    def follow(self) -> None:
        self.following = True
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True)


def tail_lines(path: str | os.PathLike, limit: int) -> tuple[list[str], bool]:
    """The last `limit` lines of a file, read backwards in blocks; (lines, more_before)."""
    try:
        f = open(path, "rb")
    except OSError:
        return [], False
    with f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= limit and len(data) < _MAX_TAIL_BYTES:
            size = min(_BLOCK, pos)
            pos -= size
            f.seek(pos)
            data = f.read(size) + data
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if pos > 0 and lines:
        lines = lines[1:]  # the first one is cut by the block boundary
    more = pos > 0 or len(lines) > limit
    return lines[-limit:], more


class FileFollower:
    """Reads what was appended to a growing file since the last call (for runs of other processes)."""

    def __init__(self, path: str | os.PathLike, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self._partial = b""

    def read_new(self, limit: int = 1 << 20) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(limit)
        except OSError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]
