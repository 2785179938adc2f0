"""The one shape of a history record: a JSON line in `batch_YYYYMMDD.jsonl`.

Every record is made here, by a constructor for a finished, a skipped or an interrupted run,
so the engine, recovery, the tests and the benchmarks all write the same fields in the same
order. The first six are the spec's `BatchResult`; the rest are ours.

    >>> r = skipped("backup", "still running since 02:00:00", at=dt.datetime(2026, 3, 14, 2, 5))
    >>> list(r) == list(FIELDS), r["status"]
    (True, 'skipped')
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

FIELDS = (
    "job_name",
    "start_time",
    "end_time",
    "status",
    "output",
    "error",
    "exit_code",
    "duration_s",
    "trigger",
    "output_file",
    "run_id",
    "due_time",
    "attempt",
)
"""Every record has these keys, in this order (the history reader's fast path relies on the
first one coming first)."""

Record = dict[str, Any]

MAX_OUTPUT_TAIL = 1024 * 1024
"""The largest `output_tail_bytes` (config.py refuses more): the most stdout a record keeps."""


def new_run_id() -> str:
    """A run's id: its start to the second and 6 random hex digits (sortable, unique enough)."""
    # os.urandom, not secrets: the id needs no crypto, and `secrets` costs the daemon ~4 MB of OpenSSL
    return f"{dt.datetime.now():%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"


def iso(when: dt.datetime) -> str:
    """A record's timestamp: local time with its UTC offset, to the millisecond."""
    return when.astimezone().isoformat(timespec="milliseconds")


def finished(
    job_name: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    status: str,
    output: str = "",
    error: str | None = None,
    exit_code: int | None = None,
    duration_s: float | None = None,
    trigger: str | None = "schedule",
    output_file: str | None = None,
    run_id: str | None = None,
    due_time: str | None = None,
    attempt: int = 1,
    **extra: Any,
) -> Record:
    """A run that started and ended (success, error, timeout, or interrupted by a stop)."""
    record: Record = {
        "job_name": job_name,
        "start_time": iso(start),
        "end_time": iso(end),
        "status": status,
        "output": output,
        "error": error,
        "exit_code": exit_code,
        "duration_s": duration_s,
        "trigger": trigger,
        "output_file": output_file,
        "run_id": run_id,
        "due_time": due_time,
        "attempt": attempt,
    }
    record.update(extra)
    return record


def skipped(job_name: str, reason: str, *, at: dt.datetime, trigger: str | None = "schedule", run_id: str | None = None, **extra: Any) -> Record:
    """A due or requested run that did not start, with the reason as its error."""
    return finished(job_name, start=at, end=at, status="skipped", error=reason, trigger=trigger, run_id=run_id, **extra)


INTERRUPTED_ERROR = "the scheduler stopped during the run (crash, kill or power cut)"


def interrupted(entry: dict[str, Any], run_id: str, *, at: dt.datetime, output: str = "", output_file: str | None = None) -> Record:
    """A run found cut off by a crash: made from its entry in the state's `running` table."""
    start = _parse(entry.get("start_time")) or at
    return finished(
        entry.get("job_name") or "?",
        start=start,
        end=at,
        status="interrupted",
        output=output,
        error=INTERRUPTED_ERROR,
        trigger=entry.get("trigger"),
        output_file=output_file,
        run_id=run_id,
    )


def _parse(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) and text else None
    except ValueError:
        return None
