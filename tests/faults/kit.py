"""Helpers of the fault suite: real processes, real files, nothing in insect_console mocked.

Every process a fault test starts carries `INSECT_FAULTS_TAG=<per-test id>` in its environment
(the daemon and CLI subprocesses inherit it, and so do their jobs, including ones that called
setsid), so the conftest can find and end anything a test left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import psutil
import tomli_w

import helpers
# the engine suite's process helpers (tests/helpers.py), under the names this suite uses
from helpers import assert_one_line_error, describe, is_alive as alive, kill_processes as kill_all, processes_with_env  # noqa: F401

PY = sys.executable
TAG_ENV = "INSECT_FAULTS_TAG"
RUN_MARKER = "INSECT_CONSOLE_RUN"  # the engine's per-run marker, read here independently
CONFIG_REL = "config/batch_config.toml"
LOG_REL = "logs/batch"

T = TypeVar("T")

# The figures the issue asks for; printed at the end of the run by conftest.py.
FIGURES: Counter = Counter()


def note(**counts: int) -> None:
    FIGURES.update(counts)


# -- config ---------------------------------------------------------------------------


def job(name: str, command: str, schedule_type: str = "interval", schedule_time: str = "3600", **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": command, "schedule_type": schedule_type, "schedule_time": schedule_time, **extra}


def write_config(base: Path, jobs: Iterable[dict[str, Any]], settings: dict[str, Any] | None = None, rel: str = CONFIG_REL) -> Path:
    """A private (0600) TOML config in `base`, as a person would write it."""
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    doc: dict[str, Any] = {}
    if settings:
        doc["settings"] = settings
    doc["jobs"] = list(jobs)
    path.write_text(tomli_w.dumps(doc))
    os.chmod(path, 0o600)
    return path


def fast(**more: Any) -> dict[str, Any]:
    """Settings with short graces, so no fault test waits long."""
    return {"kill_grace": 1, "shutdown_grace": 2, **more}


def state_path(config: Path) -> Path:
    return config.with_name(config.stem + ".state.json")


def read_state(config: Path) -> dict[str, Any]:
    """The state file, which must always parse (a torn state file fails the test)."""
    path = state_path(config)
    if not path.exists():
        return {"jobs": {}, "running": {}}
    return json.loads(path.read_bytes())


# -- CLI and daemon ---------------------------------------------------------------------


def cli(base: Path, *args: str, config: str | None = CONFIG_REL, timeout: float = 120, env: dict[str, str] | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
    """`python -m insect_console [-c config] args...` with cwd=`base`; output as text."""
    argv = [PY, "-m", "insect_console"]
    if config is not None:
        argv += ["-c", config]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        argv + list(args), cwd=base, capture_output=True, timeout=timeout, env=full_env,
        stdin=subprocess.DEVNULL, text=True, errors="replace",
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


class Daemon:
    """`python -m insect_console -c CONFIG scheduler --no-ui` in `base`; stderr collected by a thread.

    stderr is read through a pipe (not a file), so the log survives a test that makes file
    writes fail. `stop()` always ends the process (SIGTERM, then SIGKILL of its group).
    """

    def __init__(self, base: Path, config: str = CONFIG_REL, env: dict[str, str] | None = None, level: str = "INFO", umask: int | None = None) -> None:
        self.base = base
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [PY, "-m", "insect_console", "-c", config, "-l", level, "scheduler", "--no-ui"],
            cwd=base,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=None if umask is None else (lambda: os.umask(umask)),
        )
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, name=f"daemon-{self.pid}-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def count(self, needle: str) -> int:
        with self._cond:
            return sum(needle in line for line in self.lines)

    def wait_log(self, needle: str, n: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(needle in line for line in self.lines) < n:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging {needle!r}:\n{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"daemon did not log {needle!r} {n} time(s) within {timeout} s:\n{self.log_tail()}")
                self._cond.wait(min(left, 0.2))

    def log_tail(self, n: int = 40) -> str:
        with self._cond:
            return "\n".join(self.lines[-n:])

    def started(self, timeout: float = 30) -> "Daemon":
        self.wait_log("scheduler started", timeout=timeout)
        return self

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stderr:
            self._reader.join(5)
            self.proc.stderr.close()


# -- waiting ------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll until `predicate()` is truthy (a liveness bound, never a timing assertion); this suite waits longer."""
    return helpers.wait_for(predicate, timeout, interval, what)


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


# -- processes -------------------------------------------------------------------------------




def run_processes(run_id: str) -> list[psutil.Process]:
    return processes_with_env(RUN_MARKER, run_id)


def parse_toml(data: bytes) -> dict[str, Any]:
    return tomllib.loads(data.decode("utf-8"))
