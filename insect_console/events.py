"""What the engine tells its faces (console, daemon log, CLI), delivered through an EventBus.

Listeners are called on the engine's threads and must return quickly; the console turns each
event into a Textual message, the CLI prints output lines.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    job_name: str
    trigger: str
    start_time: str
    pid: int | None
    output_file: str | None


@dataclass(frozen=True)
class OutputLines:
    """A batch of lines read in one go from one stream of a run (already coalesced)."""

    run_id: str
    job_name: str
    stream: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    job_name: str
    record: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class RunSkipped:
    """A due or requested run did not start; `run_id` is set when a client asked for it."""

    job_name: str
    reason: str
    run_id: str | None = None


@dataclass(frozen=True)
class RunWaiting:
    """A due run waits: for its conditions (battery, disk, temperature, a command) or its group."""

    job_name: str
    reason: str


@dataclass(frozen=True)
class Notification:
    """A failure streak reached the threshold (`kind="failing"`), or ended (`kind="recovered"`)."""

    job_name: str
    kind: str
    message: str
    failures: int
    status: str
    output_file: str | None = None


@dataclass(frozen=True)
class ConfigReloaded:
    """The config was read again; `error` is set when the new file was refused (old jobs kept)."""

    error: str | None = None


@dataclass(frozen=True)
class ClockJumped:
    seconds: float


@dataclass(frozen=True)
class DaemonLost:
    """An attached console lost its daemon (it stopped or crashed)."""

    reason: str


@dataclass(frozen=True)
class StatusChanged:
    """An attached console's cache of the daemon's status was refreshed (never sent on the wire)."""


Event = RunStarted | OutputLines | RunFinished | RunSkipped | RunWaiting | Notification | ConfigReloaded | ClockJumped | DaemonLost | StatusChanged
Listener = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        with self._lock:
            self._listeners = [*self._listeners, listener]
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type(event).__name__)
