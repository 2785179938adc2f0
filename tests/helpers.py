"""The one set of builders and helpers of every test suite: the engine suite (tests/engine),
the console suite (tests/console) and the fault suite (tests/faults, through its kit.py).

Everything here uses real files and real processes; nothing in insect_console is mocked.
Nothing here imports pytest when the module is imported (only `leftover_guard` needs it, and
imports it when called), so a benchmark script can use these builders too.
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
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import psutil
import tomlkit

PY = sys.executable
TAG_ENV = "INSECT_TEST_TAG"
"""Every process a test starts inherits this variable, so leftovers can be found and ended."""
RUN_MARKER_ENV = "INSECT_CONSOLE_RUN"
"""The engine's own per-run marker (see proctree.py); read here independently with psutil."""

CONFIG_REL = "config/batch_config.toml"
LOG_REL = "logs/batch"
"""Where the history goes by default, relative to the base directory."""
BATCH_RESULT_FIELDS = ("job_name", "start_time", "end_time", "status", "output", "error")
STATUSES = {"success", "error", "timeout", "interrupted", "skipped"}

T = TypeVar("T")


# -- config -----------------------------------------------------------------------------------


def job(name: str, command: str = "true", schedule_type: str = "interval", schedule_time: str = "3600", **extra: Any) -> dict[str, Any]:
    """One job as the config holds it (a `[[jobs]]` table); `extra` adds fields (timeout=1, shell=True...)."""
    return {"name": name, "command": command, "schedule_type": schedule_type, "schedule_time": schedule_time, **extra}


def write_config(base: Path, jobs: Iterable[dict[str, Any]] = (), settings: dict[str, Any] | None = None, rel: str = CONFIG_REL) -> Path:
    """A private TOML config (file 0600, its directory 0700) at `base / rel`, written as a person
    would write it (a `[settings]` table, one `[[jobs]]` table per job, by tomlkit); returns its
    path. `rel` places it elsewhere than config/. A test of comments or broken TOML writes its
    own text."""
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    doc: dict[str, Any] = {}
    if settings:
        doc["settings"] = settings
    doc["jobs"] = list(jobs)
    path.write_text(tomlkit.dumps(doc))
    os.chmod(path, 0o600)
    return path


def fast_settings(**more: Any) -> dict[str, Any]:
    """Settings with short graces, so stopping and killing never makes a test wait long."""
    return {"kill_grace": 1, "shutdown_grace": 2, **more}


def state_path(config: Path) -> Path:
    """The state file beside `config`."""
    return config.with_name(config.stem + ".state.json")


def read_state(config: Path) -> dict[str, Any]:
    """The state file beside `config`, empty while there is none. It must always parse: the
    engine writes it atomically, so a torn state file fails the test."""
    path = state_path(config)
    if not path.exists():
        return {"jobs": {}, "running": {}}
    return json.loads(path.read_bytes())


# -- running the CLI ----------------------------------------------------------------------------


def cli_argv(*args: str, config: str | None = CONFIG_REL) -> list[str]:
    """`python -m insect_console [-c config] args...`"""
    return [PY, "-m", "insect_console", *(["-c", config] if config is not None else []), *args]


def cli(cwd: Path, *args: str, config: str | None = CONFIG_REL, timeout: float = 60, env: dict[str, str] | None = None,
        umask: int | None = None) -> subprocess.CompletedProcess:
    """`python -m insect_console [-c config] args...` in `cwd`, output captured as text."""
    return subprocess.run(
        cli_argv(*args, config=config), cwd=cwd, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL, text=True, errors="replace",
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


@contextlib.contextmanager
def cli_process(cwd: Path, *args: str, config: str | None = CONFIG_REL, **popen: Any) -> Iterator[subprocess.Popen]:
    """`python -m insect_console [-c config] args...` started in `cwd` in its own session, for the
    block to talk to or signal (`popen` goes to Popen: stdout=subprocess.PIPE...). One still
    running when the block ends is killed with its process group."""
    proc = subprocess.Popen(cli_argv(*args, config=config), cwd=cwd, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """The CLI's contract for a user mistake: exit `code`, one line on stderr, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- waiting ------------------------------------------------------------------------------------


class Deadline:
    """The limit of one wait: `check(predicate)` is predicate()'s value, and fails once `timeout`
    seconds have passed without a truthy one. Shared by `wait_for` and the console suite's
    async `wait_until`, which differ only in how they pause between looks."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.at = time.monotonic() + timeout

    def check(self, predicate: Callable[[], T]) -> T:
        value = predicate()
        if not value and time.monotonic() > self.at:
            raise AssertionError(f"timed out after {self.timeout} s waiting for {self.what}")
        return value


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy (a liveness bound, never a timing
    assertion) and return that; fail after `timeout` seconds."""
    deadline = Deadline(timeout, what)
    while not (value := deadline.check(predicate)):
        time.sleep(interval)
    return value


# -- history ------------------------------------------------------------------------------------


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
    import pytest

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
    """`python [python_args] -m insect_console -c CONFIG -l LEVEL scheduler --no-ui [extra_args]`
    as a subprocess in `base`, in its own session; its stderr is collected by a thread.

    stderr is read through a pipe (not a file), so the log survives a test that makes file
    writes fail. `stop()` always ends the process (`sig`, then SIGKILL of its group) and returns
    its exit code.
    """

    def __init__(self, base: Path, config: str = CONFIG_REL, env: dict[str, str] | None = None, level: str = "INFO",
                 umask: int | None = None, extra_args: Iterable[str] = (), python_args: Iterable[str] = ()) -> None:
        self.base = base
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [PY, *python_args, "-m", "insect_console", "-c", config, "-l", level, "scheduler", "--no-ui", *extra_args],
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
        """Everything the daemon wrote to stderr so far."""
        with self._cond:
            return "\n".join(self.lines)

    def count(self, needle: str) -> int:
        """How many lines of the log contain `needle`."""
        with self._cond:
            return sum(needle in line for line in self.lines)

    def wait_log(self, needle: str, n: int = 1, timeout: float = 30) -> str:
        """Wait until `n` lines of the log contain `needle`; returns the log. Fails at once if the
        daemon exits first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(needle in line for line in self.lines) < n:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging {needle!r}:\n{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"daemon did not log {needle!r} {n} time(s) within {timeout} s:\n{self.log_tail()}")
                self._cond.wait(min(left, 0.2))
            return "\n".join(self.lines)

    def log_tail(self, n: int = 40) -> str:
        with self._cond:
            return "\n".join(self.lines[-n:])

    def started(self, timeout: float = 30) -> "Daemon":
        """Wait for "scheduler started" (its control socket is up by then); returns self."""
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """End the daemon whatever its state: `sig`, `timeout` seconds, then SIGKILL to its group.
        Returns its exit code (None only if not even SIGKILL ended it)."""
        try:
            return end_process(self.proc, sig, timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.stderr:
                self._reader.join(5)
                self.proc.stderr.close()


def py_cmd(code: str, *args: str) -> str:
    """A job command (no shell) that runs `code` with this Python."""
    return " ".join(shlex.quote(x) for x in (PY, "-c", code, *args))


def wait_file_cmd(path: Path, then: str = "") -> str:
    """A job command that waits until `path` exists (then prints `then`): a run that ends on cue."""
    code = f"import os,sys,time\nwhile not os.path.exists({str(path)!r}): time.sleep(0.05)\nprint({then!r})"
    return py_cmd(code)
