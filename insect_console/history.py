"""Run history: one JSON line per run in `batch_YYYYMMDD.jsonl`, read newest first.

Writers append a whole line with one O_APPEND write, so the daemon and CLI runs can write at
once. Readers go backwards through the files in blocks, so the newest records come first and
memory stays bounded however long the history is; malformed lines are skipped and counted,
and a line longer than any record we write (MAX_LINE: the NUL tail a power cut leaves) is
skipped without being kept.
"""

from __future__ import annotations

import bisect
import datetime as dt
import errno
import json
import logging
import os
import re
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

from insect_console.fileio import Outage, append_line, open_regular

log = logging.getLogger(__name__)

FILE_RE = re.compile(r"batch_(\d{8})\.jsonl")
STATUSES = ("success", "error", "timeout", "interrupted", "skipped")
_BLOCK = 64 * 1024
_SKIP_BLOCK = 1024 * 1024
"""Read size while passing over an overlong line (a run of real NUL bytes): fewer, bigger reads."""
_MAX_HOLES = 100_000
MAX_LINE = 8 * 1024 * 1024
"""The longest history line the readers take as a record. The largest record we write is the
output tail (at most MAX_OUTPUT_TAIL bytes, which JSON can make 6x longer: a control byte is
written as \\u0001), the stderr tail in `error` (2 KiB, 6x too) and a few hundred bytes of
other fields: under 6.1 MiB. A longer "line" (the NUL bytes a power cut leaves at the end of an
appended file, garbage) is skipped in bounded memory and counted as malformed."""


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


def reverse_chunks(path: Path, block: int = _BLOCK, *, max_line: int = MAX_LINE, on_overlong: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The file from its end to its start in pieces of whole lines (each piece in file order).

    A line longer than `max_line` is not one of our records (a run of NUL bytes a power cut left
    at the end of the file, garbage): it is passed over without being kept, and `on_overlong`
    is called once for it. The holes of a sparse file are skipped with a seek, so a 2 GB NUL tail
    costs next to nothing; memory stays under `max_line` plus a block, time within one read of
    the file.
    """
    try:
        f = os.fdopen(open_regular(path, os.O_RDONLY), "rb")  # a FIFO or symlink is passed over
    except OSError:
        return
    with f:
        fd = f.fileno()
        pos = os.fstat(fd).st_size
        holes = _holes(fd, pos)
        pending: list[bytes] = []  # the end of a line whose start is further back, last piece first
        pending_len = 0
        overlong = False  # the line being gathered is too long: it is dropped as it is read
        while pos > 0:
            hole = _hole_before(holes, pos)
            if hole is not None and (overlong or pending_len + pos - hole > max_line):
                overlong, pending, pending_len, pos = True, [], 0, hole  # NUL bytes only: no line end in it
                continue
            if overlong:  # look for the start of the long line in big reads, keeping nothing
                size = min(max(block, _SKIP_BLOCK), pos)
                pos -= size
                last = os.pread(fd, size, pos).rfind(b"\n")
                if last >= 0:
                    pos += last + 1  # it starts there; what is before it is read again as usual
                    overlong = False
                    if on_overlong is not None:
                        on_overlong()
                continue
            size = min(block, pos)
            pos -= size
            piece = os.pread(fd, size, pos)
            if pos > 0:
                first = piece.find(b"\n")
                if first < 0:  # all of it inside one line
                    pending.append(piece)
                    pending_len += len(piece)
                    if pending_len > max_line:
                        overlong, pending, pending_len = True, [], 0
                    continue
                head, body = piece[:first], piece[first + 1 :]
            else:
                head, body = b"", piece
            # `body` is whole lines, then the start of the line `pending` ends
            if pending and pending_len + len(body) - body.rfind(b"\n") - 1 > max_line:
                body = body[: body.rfind(b"\n") + 1]  # that line is too long: left out
                if on_overlong is not None:
                    on_overlong()
            elif pending:
                pending.append(body)
                body = b"".join(reversed(pending))
            if body:
                yield body
            pending, pending_len = ([head], len(head)) if head else ([], 0)
        if overlong and on_overlong is not None:  # a long line at the very start of the file
            on_overlong()


def _holes(fd: int, size: int) -> list[tuple[int, int]]:
    """The holes of a sparse file as (start, end) (SEEK_HOLE/SEEK_DATA); none where unsupported."""
    seek_hole, seek_data = getattr(os, "SEEK_HOLE", None), getattr(os, "SEEK_DATA", None)
    holes: list[tuple[int, int]] = []
    if seek_hole is None or seek_data is None:
        return holes
    offset = 0
    try:
        while offset < size and len(holes) < _MAX_HOLES:
            start = os.lseek(fd, offset, seek_hole)
            if start >= size:
                break
            try:
                end = os.lseek(fd, start, seek_data)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                end = size  # no data after it: a hole up to the end
            holes.append((start, min(end, size)))
            offset = end
    except OSError:
        pass  # a filesystem without SEEK_HOLE: a hole is read as the zeros it is
    return holes


def _hole_before(holes: list[tuple[int, int]], pos: int) -> int | None:
    """The start of the hole the byte before `pos` is in, or None."""
    i = bisect.bisect_left(holes, (pos,)) - 1
    if i >= 0 and holes[i][0] < pos <= holes[i][1]:
        return holes[i][0]
    return None


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
            for chunk in reverse_chunks(path, self.block, on_overlong=self._overlong):
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

    def _overlong(self) -> None:
        self.skipped += 1  # a line too long to be a record: malformed, whatever it names

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


# -- what the console shows ---------------------------------------------------------------

SLIM_KEYS = ("job_name", "start_time", "end_time", "status", "error", "exit_code", "duration_s", "trigger", "output_file", "run_id")


def slim(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its output tail (which can be 64 KB): what a list of runs keeps."""
    out = {k: record.get(k) for k in SLIM_KEYS}
    if isinstance(out["error"], str) and len(out["error"]) > 200:
        out["error"] = out["error"][:200]
    return out


@dataclass
class HistoryPage:
    records: list[dict[str, Any]]
    done: bool
    """No more records match."""
    skipped: int
    """Malformed lines met so far by this query."""


class HistoryCursor:
    """One query's records, a page at a time, newest first (slim records).

    A console holds one per filter setting; `close()` stops a scan that is no longer wanted
    (a newer filter), even while a page is being read on another thread.
    """

    def __init__(self, log_dir: Path, query: HistoryQuery) -> None:
        self._closed = False
        self._reader = HistoryReader(log_dir, cancelled=lambda: self._closed)
        self._records = self._reader.records(query)

    @property
    def files_read(self) -> list[Path]:
        """The daily files opened so far: a page reads only as far back as it needs."""
        return self._reader.files_read

    def next_page(self, count: int) -> HistoryPage:
        page = [slim(r) for r in islice(self._records, count)]
        return HistoryPage(page, len(page) < count, self._reader.skipped)

    def close(self) -> None:
        self._closed = True


def find_record(log_dir: Path, slim_record: dict[str, Any]) -> dict[str, Any] | None:
    """The full record of a run (with its output tail), found again in its day's file."""
    try:
        day = dt.datetime.fromisoformat(slim_record["start_time"]).date()
    except (KeyError, TypeError, ValueError):
        return None
    q = HistoryQuery(job=slim_record.get("job_name"), since=day, until=day, limit=None)
    for record in HistoryReader(log_dir).records(q):
        if all(record.get(k) == slim_record.get(k) for k in ("run_id", "start_time", "status")):
            return record
    return None


def recent_results(log_dir: Path, names: list[str], width: int, scan: int) -> dict[str, list[tuple[str, float | None]]]:
    """Per job, its last `width` results (status, duration), newest first, from one bounded
    scan of the newest `scan` records: the console's trend strips."""
    per_job: dict[str, list[tuple[str, float | None]]] = {n: [] for n in names}
    for record in HistoryReader(log_dir).records(HistoryQuery(limit=scan)):
        results = per_job.get(record.get("job_name"))
        if results is not None and len(results) < width:
            results.append((record.get("status"), record.get("duration_s")))
        if all(len(v) >= width for v in per_job.values()):
            break
    return per_job


class HistoryWriter:
    """Appends run records for the engine; a failure (disk full) is logged once per outage and
    never stops a run."""

    def __init__(self, log_dir: Callable[[], Path]) -> None:
        self._log_dir = log_dir
        self._outage = Outage()

    def append(self, record: dict[str, Any]) -> None:
        log_dir = self._log_dir()
        try:
            append_record(log_dir, record)
        except OSError as e:
            if self._outage.failed():
                log.error("can't write history to %s: %s (runs go on; records are lost until this is fixed)", log_dir, e.strerror)
            return
        if self._outage.worked():
            log.warning("history writes work again")
