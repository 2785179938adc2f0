"""What every console screen shares: the app it runs in, the engine surface, and `Command`.

A screen never opens another screen and never runs a job command itself: it posts a `Command`
("run", "kill", "toggle", "delete", "output", "edit", "add", "history", "run-detail", "back",
"open-station"), which
bubbles to the App; the App owns navigation and the job commands, so the job table, the output
viewer, the history and the command palette all run exactly the same code.

`ConsoleApp` declares what screens may use of the App, so no screen imports app.py.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from textual.message import Message
from textual.screen import Screen
from textual.signal import Signal

from insect_console.clock import Clock
from insect_console.runoutput import OutputHub
from insect_console.sysstats import SystemStats
from insect_console.surface import EngineView, JobStatus


class ConsoleApp(Protocol):
    """The App as its screens and widgets see it."""

    engine: EngineView
    """The engine of the console shown (None only on the stations overview, before a station is open)."""
    clock: Clock
    output: OutputHub
    """Live output lines of the runs of the engine, per job."""
    engine_events: Signal[Any]
    """Every engine event, on the UI thread."""
    output_events: Signal[str]
    """The name of a job with new lines waiting in `output`."""
    status_changed: Signal[None]
    """The bottom line's data changed (stats, a notice)."""
    last_stats: SystemStats | None
    last_notice: tuple[str, str] | None
    is_headless: bool

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None) -> None: ...

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


class Command(Message):
    """A job command or a screen to open, asked for by a screen (or the palette)."""

    def __init__(self, action: str, job: str | None = None, record: dict[str, Any] | None = None, station: Any = None) -> None:
        super().__init__()
        self.action = action
        self.job = job
        self.record = record
        self.station = station
        """For "open-station": the stations.Station to open."""


class ConsoleScreen(Screen):
    """A full screen of the console. Subclasses get engine events through `engine_event()`."""

    app: ConsoleApp  # type: ignore[assignment]

    @property
    def engine(self) -> EngineView:
        return self.app.engine

    def on_mount(self) -> None:
        self.app.engine_events.subscribe(self, self.engine_event)

    def engine_event(self, event: Any) -> None:
        """Called on the UI thread for every engine event (RunStarted, RunFinished, ...)."""

    def command(self, action: str, job: str | None = None, record: dict[str, Any] | None = None) -> None:
        self.post_message(Command(action, job, record))

    def job_status(self, name: str) -> JobStatus | None:
        return next((s for s in self.engine.status() if s.name == name), None)
