"""Shared helpers for the engine, daemon and CLI tests.

Everything here uses real files and real processes. Nothing in insect_console is mocked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import psutil
import pytest

PY = sys.executable
TAG_ENV = "INSECT_TEST_TAG"
"""Every process a test starts inherits this variable, so leftovers can be found and ended."""
RUN_MARKER_ENV = "INSECT_CONSOLE_RUN"
"""The engine's own per-run marker (see proctree.py); read here independently with psutil."""

CONFIG_REL = "config/batch_config.toml"
BATCH_RESULT_FIELDS = ("job_name", "start_time", "end_time", "status", "output", "error")
STATUSES = {"success", "error", "timeout", "interrupted", "skipped"}

T = TypeVar("T")


# -- config text ------------------------------------------------------------------


def toml_str(value: str) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these texts)."""
    return json.dumps(value, ensure_ascii=False)


def job_toml(name: str, command: str, schedule_type: str = "interval", schedule_time: str = "3600", **extra: Any) -> str:
    """One `[[jobs]]` table as TOML text."""
    lines = [
        "[[jobs]]",
        f"name = {toml_str(name)}",
        f"command = {toml_str(command)}",
        f"schedule_type = {toml_str(schedule_type)}",
        f"schedule_time = {toml_str(schedule_time)}",
    ]
    for key, value in extra.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        elif isinstance(value, dict):
            inner = ", ".join(f"{k} = {toml_str(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {toml_str(value)}")
    return "\n".join(lines) + "\n"


def settings_toml(**settings: Any) -> str:
    if not settings:
        return ""
    lines = ["[settings]"]
    for key, value in settings.items():
        lines.append(f"{key} = {value if isinstance(value, int) else toml_str(value)}")
    return "\n".join(lines) + "\n\n"


def write_config(base: Path, *jobs: str, settings: dict[str, Any] | None = None, rel: str = CONFIG_REL) -> Path:
    """Write a TOML config made of `settings` and the `[[jobs]]` texts; returns its path."""
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings_toml(**(settings or {})) + "\n".join(jobs))
    return path


def fast_settings(**more: Any) -> dict[str, Any]:
    """Short graces so stopping and killing never makes a test wait long."""
    base = {"kill_grace": 1, "shutdown_grace": 2}
    base.update(more)
    return base


# -- running the CLI ------------------------------------------------------------------


def cli(cwd: Path, *args: str, config: str | None = CONFIG_REL, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m insect_console [-c config] args...` in `cwd`, output captured as text."""
    argv = [PY, "-m", "insect_console"]
    if config is not None:
        argv += ["-c", config]
    argv += list(args)
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """The CLI's contract for a user mistake: exit `code`, one line on stderr, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- waiting ---------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# -- history and state files --------------------------------------------------------------


def history_records(log_dir: Path) -> list[dict[str, Any]]:
    """Every parseable record in every daily file, oldest file first, in file order."""
    out = []
    for path in sorted(log_dir.glob("batch_*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def read_state(config_path: Path) -> dict[str, Any]:
    path = config_path.with_name(config_path.stem + ".state.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"jobs": {}, "running": {}}


def check_batch_result(record: dict[str, Any]) -> None:
    """A record has the spec's BatchResult fields, with the spec's types."""
    for key in BATCH_RESULT_FIELDS:
        assert key in record, (key, record)
    assert isinstance(record["job_name"], str) and record["job_name"]
    start = dt.datetime.fromisoformat(record["start_time"])
    end = dt.datetime.fromisoformat(record["end_time"])
    assert (start.tzinfo is None) == (end.tzinfo is None)
    assert end >= start, record
    assert record["status"] in STATUSES, record
    assert isinstance(record["output"], str), record
    assert record["error"] is None or isinstance(record["error"], str), record
    if record["status"] == "success":
        assert record["error"] is None, record
    else:
        assert record["error"], record


# -- processes -----------------------------------------------------------------------------


def is_alive(pid: int) -> bool:
    """True for a live process; a zombie (ended, not yet reaped) counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_with_env(name: str, value: str) -> list[psutil.Process]:
    """Live processes (other than this one) whose environment has name=value."""
    needle = f"{name}={value}".encode()
    found = []
    me = os.getpid()
    for pid_text in os.listdir("/proc"):
        if not pid_text.isdigit() or int(pid_text) == me:
            continue
        try:
            with open(f"/proc/{pid_text}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and is_alive(int(pid_text)):
            try:
                found.append(psutil.Process(int(pid_text)))
            except psutil.Error:
                pass
    return found


def run_survivors(run_id: str) -> list[psutil.Process]:
    """Live processes carrying the engine's marker for `run_id`."""
    return processes_with_env(RUN_MARKER_ENV, run_id)


def describe(procs: Iterable[psutil.Process]) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        try:
            out.append((p.pid, " ".join(p.cmdline())))
        except psutil.Error:
            out.append((p.pid, "?"))
    return out


def kill_processes(procs: Iterable[psutil.Process]) -> None:
    procs = list(procs)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


@contextlib.contextmanager
def leftover_guard(monkeypatch, timeout: float) -> Iterator[str]:
    """Tag every process started inside (through the environment); afterwards end and report
    any that is still there `timeout` seconds later. Shared by the engine and fault suites."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG_ENV, tag)
    yield tag
    try:
        wait_for(lambda: not processes_with_env(TAG_ENV, tag), timeout=timeout, what="the test's processes to end")
    except AssertionError:
        procs = processes_with_env(TAG_ENV, tag)
        described = describe(procs)
        kill_processes(procs)
        pytest.fail(f"the test left processes running: {described}")


def end_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    """Stop a Popen started with start_new_session=True: `sig`, then SIGKILL to its group."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.wait(10)


class Daemon:
    """`python -m insect_console -c CONFIG scheduler --no-ui` as a subprocess in its own session."""

    def __init__(self, cwd: Path, config: str = CONFIG_REL, extra_args: Iterable[str] = (), python_args: Iterable[str] = ()) -> None:
        self.cwd = cwd
        self.log_path = cwd / f"daemon-{time.monotonic_ns()}.stderr"
        self._log = open(self.log_path, "wb")
        argv = [PY, *python_args, "-m", "insect_console", "-c", config, "scheduler", "--no-ui", *extra_args]
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> str:
        def seen() -> bool:
            if self.proc.poll() is not None and text not in self.log():
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging {text!r}:\n{self.log()}")
            return text in self.log()

        wait_for(seen, timeout, what=f"daemon log line {text!r}")
        return self.log()

    def wait_started(self) -> None:
        self.wait_log("scheduler started")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        try:
            return end_process(self.proc, sig, timeout)
        finally:
            self._log.close()


def py_cmd(code: str, *args: str) -> str:
    """A job command (no shell) that runs `code` with this Python."""
    return " ".join(shlex.quote(x) for x in (PY, "-c", code, *args))


def wait_file_cmd(path: Path, then: str = "") -> str:
    """A job command that waits until `path` exists (then prints `then`): a run that ends on cue."""
    code = f"import os,sys,time\nwhile not os.path.exists({str(path)!r}): time.sleep(0.05)\nprint({then!r})"
    return py_cmd(code)
