"""The one-line bars every screen shares: the top bar (where am I, what runs, the time) and
the status line (system stats via psutil, the latest notification)."""

from __future__ import annotations

import time

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from insect_console.widgets.cells import tone
from insect_console.textfmt import clip, terminal_safe


def _spread(left: Text, right: Text, width: int, keep: str = "right") -> Text:
    """`left` and `right` on one line of `width` cells; the side that is not `keep` is cut first."""
    left, right = left.copy(), right.copy()
    if cell_len(left.plain) + cell_len(right.plain) + 1 > width:
        if keep == "right":
            left.truncate(max(0, width - cell_len(right.plain) - 1), overflow="ellipsis")
        else:
            right.truncate(max(0, width - cell_len(left.plain) - 2), overflow="ellipsis")
        if cell_len(left.plain) + cell_len(right.plain) + 1 > width:
            right.truncate(max(0, width - cell_len(left.plain) - 1), overflow="ellipsis")
    gap = max(1, width - cell_len(left.plain) - cell_len(right.plain))
    return Text.assemble(left, " " * gap, right)


class TopBar(Widget):
    """ "insect-console › Jobs           demo.toml · 1 running · 10:00:00"; ticks once a second.
    Attached, the daemon's pid takes the place of the config; on a station elsewhere, its name too."""

    DEFAULT_CSS = "TopBar { height: 1; }"

    def __init__(self, section: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.section = section

    def on_mount(self) -> None:
        self._tick()

    def _tick(self) -> None:
        """Repaint just after each wall-clock second turns, in step with the job table."""
        self.refresh()
        self.set_timer(1.02 - time.time() % 1.0, self._tick)

    def set_section(self, section: str) -> None:
        self.section = section
        self.refresh()

    def render(self) -> Text:
        app = self.app
        engine = app.engine
        left = Text.assemble((" insect-console", "bold"), " › ", self.section)
        if engine is None:  # the stations overview
            return _spread(left, Text(app.clock.now().strftime("%H:%M:%S ")), self.size.width)
        running = len(engine.active_runs())
        if engine.remote_host is not None:
            host = clip(engine.remote_host, 20)
            where = Text(f"{host}: CONNECTION LOST", style="bold red") if not engine.running else Text(f"{host} · daemon pid {engine.daemon_pid}", style="bold")
        elif engine.attached:
            pid = engine.daemon_pid
            where = Text(f"daemon pid {pid} GONE", style="bold red") if not engine.running else Text(f"attached to daemon pid {pid}", style="bold")
        else:
            where = Text(clip(terminal_safe(engine.where), 28))
        right = Text.assemble(
            where,
            " · ",
            (f"{running} running", "bold") if running else "idle",
            " · ",
            app.clock.now().strftime("%H:%M:%S "),
        )
        return _spread(left, right, self.size.width)


class StatusLine(Widget):
    """System stats on the left, the latest notification on the right; fed by the app's signal."""

    DEFAULT_CSS = "StatusLine { height: 1; }"

    def on_mount(self) -> None:
        self.app.status_changed.subscribe(self, lambda _data: self.refresh())

    def render(self) -> Text:
        app = self.app
        stats = app.last_stats.describe() if app.last_stats is not None else "…"
        notice = app.last_notice
        right = Text(notice[1] + " ", style=tone(notice[0])) if notice else Text("")
        return _spread(Text(" " + stats), right, self.size.width, keep="left")
