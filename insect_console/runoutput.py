"""A run's output, on disk and live: where its file goes, reading its tail, following it as it
grows, and the bounded buffer of live lines the console draws from.

No UI here: the console reads files and live lines only through these, and a remote console
(over the control socket) gets the same answers from the daemon.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from insect_console.events import OutputLines, RunFinished, RunStarted
from insect_console.fileio import read_tail

MAX_LINES = 10_000
"""Lines a viewer keeps (and a tail reads): the full output is in the run's file."""
_BLOCK = 64 * 1024
_MAX_TAIL_BYTES = 8 << 20
"""A tail never reads more than this, even from a file of one endless line."""


def output_path(log_dir: Path, job_name: str, started: dt.datetime, run_id: str) -> Path:
    """Where a run's full output goes: output/YYYYMMDD/NAME-HHMMSS-ID.log under the log dir."""
    return log_dir / "output" / f"{started:%Y%m%d}" / f"{job_name}-{started:%H%M%S}-{run_id[-6:]}.log"


def tail_text(path: str | os.PathLike | None, limit: int) -> str:
    """The last `limit` bytes of a run's output file as text ("" when it can't be read; a
    symlink or FIFO in its place is never followed)."""
    if not path:
        return ""
    return read_tail(path, limit).decode("utf-8", "replace")


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


def read_since(path: str | os.PathLike, offset: int, limit: int = 1 << 20) -> tuple[list[str], int]:
    """The whole lines appended to a file after `offset`, and the offset after the last of them.

    Stateless, so a console far away can follow a file by asking again with the offset it got.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end == 0 and len(data) >= limit:
        end = len(data)  # one line longer than `limit`: hand it on in pieces
    lines = data[:end].split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8", "replace") for line in lines], offset + end


class FileFollower:
    """Follows a growing file (a run of another process) from `offset`, one call at a time."""

    def __init__(self, path: str | os.PathLike, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset

    def read_new(self, limit: int = 1 << 20) -> list[str]:
        lines, self.offset = read_since(self.path, self.offset, limit)
        return lines


OUTPUT_CAPACITY = 10_000
"""Live lines kept per job (its running or last run); the full output is in the run's file."""


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
