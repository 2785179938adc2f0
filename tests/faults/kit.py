"""The fault suite's kit: the shared builders of tests/helpers.py under the names this suite
uses, plus what only this suite needs (strict history reading, the figures it reports).

Real processes, real files, nothing in insect_console mocked. Every process a fault test
starts carries helpers.TAG_ENV in its environment (see conftest.py); the module-scoped
scenarios tag theirs with TAG_ENV below, so that a per-test guard leaves them alone.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

# the shared builders and helpers (tests/helpers.py), re-exported under the names this suite uses
from helpers import (
    CONFIG_REL,
    LOG_REL,
    PY,
    Daemon,
    assert_one_line_error,
    cli,
    cli_process,
    describe,
    fast_settings as fast,
    is_alive as alive,
    job,
    kill_processes as kill_all,
    processes_with_env,
    read_state,
    run_survivors as run_processes,
    state_path,
    wait_for,
    write_config,
)

__all__ = [
    # re-exported from helpers
    "CONFIG_REL", "LOG_REL", "PY", "Daemon", "assert_one_line_error", "cli", "cli_process", "describe", "fast", "alive", "job", "kill_all",
    "processes_with_env", "read_state", "run_processes", "state_path", "wait_for", "write_config",
    # this suite's own
    "TAG_ENV", "WAIT", "CLI_TIMEOUT", "FIGURES", "note", "history_files", "strict_records", "output_files", "lost_records",
    "assert_no_overlap", "parse_toml",
]

TAG_ENV = "INSECT_FAULTS_TAG"
"""The tag of the processes a module-scoped scenario starts (its daemon outlives one test)."""
WAIT = 30.0
"""This suite's liveness bound for `wait_for` (longer than the shared default: heavier faults)."""
CLI_TIMEOUT = 120
"""This suite's bound for one `cli` call (longer than the shared default)."""

# The figures the issue asks for; printed at the end of the run by conftest.py.
FIGURES: Counter = Counter()


def note(**counts: int) -> None:
    FIGURES.update(counts)


# -- history ---------------------------------------------------------------------------


def history_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("batch_*.jsonl"))


def strict_records(log_dir: Path) -> list[dict[str, Any]]:
    """Every history line of every daily file, each of which must be one valid JSON object."""
    out = []
    for path in history_files(log_dir):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path.name}: last line is not terminated: {data[-200:]!r}"
        for n, line in enumerate(data.split(b"\n")[:-1], 1):
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise AssertionError(f"{path.name}:{n}: not a valid JSON line ({e}): {line[:300]!r}") from None
            assert isinstance(record, dict) and isinstance(record.get("job_name"), str) and isinstance(record.get("status"), str), (path.name, n, record)
            out.append(record)
    return out


def output_files(log_dir: Path) -> list[Path]:
    return sorted((log_dir / "output").glob("*/*.log"))


def lost_records(log_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Runs that started (they have an output file) but have no record naming that file."""
    recorded = {r.get("output_file") for r in records}
    return [p for p in output_files(log_dir) if str(p) not in recorded]


def assert_no_overlap(records: list[dict[str, Any]], slack: float = 0.01) -> int:
    """No two runs of one job overlapped in time (skipped records are not runs). Returns runs checked."""
    by_job: dict[str, list[tuple[dt.datetime, dt.datetime, dict]]] = {}
    for r in records:
        if r["status"] == "skipped":
            continue
        start = dt.datetime.fromisoformat(r["start_time"])
        end = dt.datetime.fromisoformat(r["end_time"])
        by_job.setdefault(r["job_name"], []).append((start, end, r))
    n = 0
    for name, runs in by_job.items():
        runs.sort(key=lambda x: x[0])
        for (s1, e1, r1), (s2, e2, r2) in zip(runs, runs[1:]):
            assert s2 >= e1 - dt.timedelta(seconds=slack), f"two runs of {name} overlapped:\n{r1}\n{r2}"
        n += len(runs)
    return n


def parse_toml(data: bytes) -> dict[str, Any]:
    return tomllib.loads(data.decode("utf-8"))
