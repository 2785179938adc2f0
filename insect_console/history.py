"""Run history: one JSON line per run in `batch_YYYYMMDD.jsonl`, read newest first.

Writers append a whole line with one O_APPEND write, so the daemon and CLI runs can write at
once. Readers go backwards through the files in blocks, so the newest records come first and
memory stays bounded however long the history is; malformed lines are skipped and counted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from insect_console.fileio import append_line, open_regular

FILE_RE = re.compile(r"batch_(\d{8})\.jsonl")
STATUSES = ("success", "error", "timeout", "interrupted", "skipped")
_BLOCK = 64 * 1024


def history_file(log_dir: Path, day: dt.date) -> Path:
    return log_dir / f"batch_{day:%Y%m%d}.jsonl"


def append_record(log_dir: Path, record: dict[str, Any], day: dt.date | None = None) -> Path:
    """Append one run record to the day's file (the day the run started)."""
    if day is None:
        day = dt.datetime.fromisoformat(record["start_time"]).date()
    path = history_file(log_dir, day)
    line = json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n"
    append_line(path, line.encode("utf-8", "replace"), what="history file")
    return path


def history_files(log_dir: Path) -> list[tuple[dt.date, Path]]:
    """The daily files, newest first."""
    out = []
    try:
        entries = os.scandir(log_dir)
    except OSError:
        return []
    with entries:
        for entry in entries:
            m = FILE_RE.fullmatch(entry.name)
            if m:
                try:
                    out.append((dt.datetime.strptime(m[1], "%Y%m%d").date(), Path(entry.path)))
                except ValueError:
                    continue
    out.sort(reverse=True)
    return out


def reverse_chunks(path: Path, block: int = _BLOCK) -> Iterator[bytes]:
    """The file from its end to its start in pieces of whole lines (each piece in file order)."""
    try:
        f = os.fdopen(open_regular(path, os.O_RDONLY), "rb")  # a FIFO or symlink is passed over
    except OSError:
        return
    with f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        rest = b""
        while pos > 0:
            size = min(block, pos)
            pos -= size
            f.seek(pos)
            chunk = f.read(size) + rest
            if pos > 0:
                cut = chunk.find(b"\n")
                if cut < 0:  # one line longer than a block: keep reading backwards
                    rest = chunk
                    continue
                rest, chunk = chunk[:cut], chunk[cut + 1 :]
            else:
                rest = b""
            yield chunk


def chunk_lines(chunk: bytes) -> Iterator[bytes]:
    """The non-blank lines of a piece from `reverse_chunks`, last first."""
    for line in reversed(chunk.split(b"\n")):
        if line.strip():
            yield line


def reverse_lines(path: Path, block: int = _BLOCK) -> Iterator[bytes]:
    """The lines of a file from last to first, reading it backwards in blocks."""
    for chunk in reverse_chunks(path, block):
        yield from chunk_lines(chunk)


@dataclass
class HistoryQuery:
    job: str | None = None
    status: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    limit: int | None = 50


@dataclass
class HistoryReader:
    """Iterates records newest first; `skipped` counts malformed lines met on the way.

    Filtered by job, a block of the file that does not contain the job's name is passed over
    unread (a scan of a year of history takes a fraction of a second), so `skipped` then counts
    only malformed lines in the blocks that do.
    """

    log_dir: Path
    skipped: int = 0
    files_read: list[Path] = field(default_factory=list)
    cancelled: Callable[[], bool] | None = None
    """Checked every block read: a reader whose result is no longer wanted stops early."""
    block: int = _BLOCK

    def records(self, query: HistoryQuery | None = None) -> Iterator[dict[str, Any]]:
        q = query or HistoryQuery()
        needle = json.dumps(q.job, ensure_ascii=False).encode() if q.job else None
        count = 0
        for day, path in history_files(self.log_dir):
            if q.until and day > q.until:
                continue
            if q.since and day < q.since:
                break
            self.files_read.append(path)
            for chunk in reverse_chunks(path, self.block):
                if self.cancelled is not None and self.cancelled():
                    return
                if needle is not None and needle not in chunk:
                    continue  # none of this job's records in these 64 KiB (nor any torn one that still names it)
                for line in chunk_lines(chunk):
                    if needle is not None and needle not in line and _looks_like_record(line):
                        continue  # another job's record: not parsed, which keeps a filtered scan fast
                    record = parse_record(line)
                    if record is None:
                        self.skipped += 1
                        continue
                    if q.job and record.get("job_name") != q.job:
                        continue
                    if q.status and record.get("status") != q.status:
                        continue
                    yield record
                    count += 1
                    if q.limit is not None and count >= q.limit:
                        return

    def latest(self, query: HistoryQuery | None = None) -> list[dict[str, Any]]:
        return list(self.records(query))


_RECORD_START = b'{"job_name": "'
_RECORD_STATUS = b'"status": "'


def _looks_like_record(line: bytes) -> bool:
    """The shape every line our writer makes has; anything else is parsed (and counted if bad)."""
    return line.startswith(_RECORD_START) and line.rstrip().endswith(b"}") and _RECORD_STATUS in line


def parse_record(line: bytes) -> dict[str, Any] | None:
    """A record, or None for a line that is not a JSON object with a job name and status."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("job_name"), str) or not isinstance(record.get("status"), str):
        return None
    return record
