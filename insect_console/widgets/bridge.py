"""From engine threads to the Textual app: events become messages, output is coalesced.

The engine calls listeners on its own threads (scheduler loop, run workers). The listener here
never touches a widget: it posts a message to the app (`post_message` is thread-safe), and for
output it only appends to a bounded per-job buffer and posts one `OutputAvailable` until the UI
has drained it. However fast a job prints, at most one output message per job is in flight, and
memory stays at `capacity` lines per job.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from textual.message import Message

from insect_console.events import OutputLines, RunFinished, RunStarted

if TYPE_CHECKING:
    from textual.app import App

    from insect_console.engine import Engine

OUTPUT_CAPACITY = 10_000
"""Lines kept per job (the running or last run); the full output is in the run's output file."""
EARLY_LIMIT = 1000
"""Events kept while the app is not yet running (older ones are dropped)."""


class EngineEvent(Message):
    """An engine event (RunStarted, RunFinished, RunSkipped, Notification, ConfigReloaded, ClockJumped)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class OutputAvailable(Message):
    """New output lines of `job_name` are waiting in the bridge's `OutputHub`."""

    def __init__(self, job_name: str) -> None:
        super().__init__()
        self.job_name = job_name

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OutputAvailable) and message.job_name == self.job_name


@dataclass
class RunBuffer:
    run_id: str
    job_name: str
    lines: deque = field(default_factory=deque)
    total: int = 0
    """Lines seen so far; line i (0-based) is kept while i >= total - len(lines)."""
    started: RunStarted | None = None
    record: dict[str, Any] | None = None


@dataclass
class OutputChunk:
    run_id: str | None
    start: int
    """Sequence number of the first line in `lines`."""
    lines: list[str]
    dropped: int
    """Lines between the asked position and `start` that the buffer no longer holds."""
    total: int
    finished: bool
    started: RunStarted | None
    record: dict[str, Any] | None


class OutputHub:
    """The recent output of the latest run of each job, shared by engine threads and the UI."""

    def __init__(self, capacity: int = OUTPUT_CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._runs: dict[str, RunBuffer] = {}
        self._pending: set[str] = set()

    def _buffer(self, job_name: str, run_id: str) -> RunBuffer:
        buf = self._runs.get(job_name)
        if buf is None or buf.run_id != run_id:
            buf = RunBuffer(run_id, job_name, deque(maxlen=self.capacity))
            self._runs[job_name] = buf
        return buf

    def started(self, event: RunStarted) -> None:
        with self._lock:
            self._buffer(event.job_name, event.run_id).started = event

    def finished(self, event: RunFinished) -> None:
        with self._lock:
            self._buffer(event.job_name, event.run_id).record = event.record

    def add(self, event: OutputLines) -> bool:
        """Store lines; True when the UI should be told (nothing is pending for this job yet)."""
        with self._lock:
            buf = self._buffer(event.job_name, event.run_id)
            buf.lines.extend(event.lines)
            buf.total += len(event.lines)
            if event.job_name in self._pending:
                return False
            self._pending.add(event.job_name)
            return True

    def has_run(self, job_name: str) -> bool:
        with self._lock:
            return job_name in self._runs

    def read(self, job_name: str, run_id: str | None = None, since: int = 0) -> OutputChunk:
        """Lines of the job's latest run from `since` on (all kept lines when the run changed)."""
        with self._lock:
            self._pending.discard(job_name)
            buf = self._runs.get(job_name)
            if buf is None:
                return OutputChunk(None, 0, [], 0, 0, False, None, None)
            if buf.run_id != run_id:
                since = 0
            first = buf.total - len(buf.lines)
            start = max(since, first)
            lines = list(islice(buf.lines, start - first, None)) if start < buf.total else []
            return OutputChunk(buf.run_id, start, lines, start - since, buf.total, buf.record is not None, buf.started, buf.record)


class EngineBridge:
    """Subscribes to the engine at once (so nothing is missed before the app runs) and posts to the app."""

    def __init__(self, engine: "Engine", capacity: int = OUTPUT_CAPACITY) -> None:
        self.engine = engine
        self.output = OutputHub(capacity)
        self._lock = threading.Lock()
        self._target: "App | None" = None
        self._closed = False
        self._early: deque[Message] = deque(maxlen=EARLY_LIMIT)
        self._unsubscribe = engine.subscribe(self._on_event)

    def attach(self, app: "App") -> None:
        """Start delivering to `app` (call on the app's thread once it runs)."""
        with self._lock:
            self._target = app
            early, self._early = list(self._early), deque(maxlen=EARLY_LIMIT)
            for message in early:
                app.post_message(message)

    def close(self) -> None:
        self._unsubscribe()
        with self._lock:
            self._closed = True
            self._target = None

    # -- engine threads ---------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        if isinstance(event, OutputLines):
            if self.output.add(event):
                self._post(OutputAvailable(event.job_name))
            return
        if isinstance(event, RunStarted):
            self.output.started(event)
        elif isinstance(event, RunFinished):
            self.output.finished(event)
        self._post(EngineEvent(event))

    def _post(self, message: Message) -> None:
        with self._lock:
            if self._closed:
                return
            if self._target is None:
                self._early.append(message)
                return
            self._target.post_message(message)
