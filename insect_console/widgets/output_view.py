"""The output viewer: a bounded `Log` that follows the end until you scroll up.

Scrolling up pauses following (`following` turns False) and new lines are counted; scrolling
back to the end (`end`) resumes. Memory is bounded by `max_lines`. The lines come from
`insect_console.runoutput` (files and live buffers), through the engine surface.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Log

from insect_console.runoutput import MAX_LINES
from insect_console.textfmt import terminal_safe


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

    def write_line(self, line: str, scroll_end: bool | None = None):
        return super().write_line(terminal_safe(line), scroll_end)

    def add_lines(self, lines: list[str]) -> None:
        """Append job text (escape sequences shown escaped); follows the end if following, else
        counts the new lines."""
        if not lines:
            return
        lines = [terminal_safe(line) for line in lines]
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
