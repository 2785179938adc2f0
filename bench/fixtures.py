"""What insect-console and the baseline are run on: configs, job commands, the daemon, the spec's loop.

These build the things a figure measures. They are the benchmark's own, not the test suite's
builders (tests/helpers.py): configs are written from dicts with tomlkit, as the figures build
hundreds of jobs at a time, and `Daemon` runs under `Procs` (ended on Ctrl-C) and knows when it
is ready; a figure times what it does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil
import tomlkit

from bench.procs import PY, Procs, child_env


# -- bytecode ----------------------------------------------------------------------

WARM_IMPORTS = ("insect_console.cli", "insect_console.engine", "insect_console.daemon", "insect_console.history", "insect_console.remote",
                "insect_console.app", "textual.app", "schedule", "psutil", "tomllib", "tomlkit", "json", "subprocess")


def warm_bytecode(cwd: Path) -> float:
    """Compile what the figures import into the run's bytecode cache (procs.use_bytecode_cache),
    so that no figure's first run pays for compiling insect-console or its libraries from source
    (an installed package has its .pyc files; an editable checkout run with
    PYTHONDONTWRITEBYTECODE=1 has none). Returns the seconds it took."""
    code = "import importlib\nfor m in %r:\n    try: importlib.import_module(m)\n    except Exception: pass" % (WARM_IMPORTS,)
    t0 = time.perf_counter()
    subprocess.run([PY, "-c", code], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=child_env(), timeout=300, start_new_session=True)
    return time.perf_counter() - t0


# -- configs ------------------------------------------------------------------------


def ic_argv(config: Path | str, *args: str) -> list[str]:
    return [PY, "-m", "insect_console", "-c", str(config), *args]


def ic_command(config: Path, *args: str) -> list[str]:
    """The installed `insect-console` script next to this python when there is one (what people run)."""
    script = Path(PY).parent / "insect-console"
    if script.exists():
        return [str(script), "-c", str(config), *args]
    return ic_argv(config, *args)


def write_config(path: Path, jobs: list[dict[str, Any]], **settings: Any) -> Path:
    doc: dict[str, Any] = {"jobs": jobs}
    if settings:
        doc = {"settings": settings, "jobs": jobs}
    path.write_text(tomlkit.dumps(doc))
    os.chmod(path, 0o600)
    return path


def write_spec_config(path: Path, jobs: list[dict[str, Any]]) -> Path:
    full = [{"enabled": True, "last_run": None, "last_status": None, "error_count": 0, **job} for job in jobs]
    path.write_text(json.dumps({"jobs": full}, indent=2))
    return path


DEFAULT_JOBS = [
    {"name": "hourly_detection", "command": "python main.py --mode single", "schedule_type": "interval", "schedule_time": "3600", "enabled": True},
    {"name": "daily_analysis", "command": "python main.py --mode analysis", "schedule_type": "daily", "schedule_time": "02:00", "enabled": True},
    {"name": "weekly_cleanup", "command": "python main.py --mode cleanup", "schedule_type": "weekly", "schedule_time": "sunday", "enabled": True},
    {"name": "daily_backup", "command": "python main.py --mode backup", "schedule_type": "daily", "schedule_time": "03:00", "enabled": False},
]
"""The spec's four default jobs (what both insect-console and the spec create on first start)."""


def stamp_command(path: Path) -> str:
    """A job command that records its own start: `date +%s.%N` appended to `path`."""
    return f"date +%s.%N >> {path}"


def read_stamps(path: Path) -> list[float]:
    try:
        return [float(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def hhmmss(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


# -- daemons ----------------------------------------------------------------------------


class Daemon:
    """`insect-console -c CFG scheduler --no-ui`, in its own dir, logging to a file."""

    def __init__(self, procs: Procs, workdir: Path, config: Path, extra_args: Sequence[str] = ("scheduler", "--no-ui"),
                 preexec_fn: Callable[[], None] | None = None, wrapper: Sequence[str] = ()) -> None:
        """`preexec_fn` runs in the child before it execs (a CPU quota); `wrapper` goes before the
        command (strace); `pid` is then still the daemon's own, found among the wrapper's children."""
        self.procs = procs
        self.workdir = workdir
        self.config = config
        self.log_path = workdir / "daemon.log"
        self._log = open(self.log_path, "ab")
        self.started_at = time.time()
        self.proc = procs.spawn([*wrapper, *ic_argv(config, *extra_args)], cwd=workdir, stderr=self._log, stdout=self._log, preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        if wrapper:
            self.pid = _child_pid(self.proc.pid)

    @property
    def socket(self) -> Path:
        """Its control socket (see insect_console/control.py)."""
        return self.config.with_name(f".{self.config.stem}.run") / "control.sock"

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Wait for the scheduler to be up (its log says so); returns the wall time it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log_tail()}")
            if self.socket.exists() or b"scheduler started" in self.log_path.read_bytes():
                return time.time()
            time.sleep(0.01)
        raise RuntimeError(f"daemon not ready after {timeout} s: {self.log_tail()}")

    def log_tail(self, n: int = 600) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        return ""

    def stop(self) -> int | None:
        if self.pid != self.proc.pid:  # wrapped: the daemon itself is asked to stop; the wrapper then ends
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(40)
        rc = self.procs.end(self.proc, sig=signal.SIGTERM, grace=40)
        self._log.close()
        return rc


def _child_pid(pid: int, timeout: float = 10.0) -> int:
    """The first child of `pid` (the program a wrapper such as strace started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(pid).children()
            if children:
                return children[0].pid
        time.sleep(0.01)
    raise RuntimeError(f"pid {pid} started no child within {timeout} s")


class SpecLoop:
    """The baseline loop (`bench/spec_loop.py`) on a JSON config, optionally at a loop phase."""

    def __init__(self, procs: Procs, workdir: Path, config: Path, phase: float | None = None, preexec_fn: Callable[[], None] | None = None) -> None:
        self.procs = procs
        self.log_path = workdir / f"spec_loop-{config.stem}.log"
        self._log = open(self.log_path, "ab")
        argv = [PY, str(Path(__file__).with_name("spec_loop.py")), str(config)]
        if phase is not None:
            argv += ["--phase", f"{phase:.4f}"]
        self.proc = procs.spawn(argv, cwd=workdir, stdout=self._log, stderr=self._log, preexec_fn=preexec_fn)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spec loop exited {self.proc.returncode}: {self.log_path.read_text()[-600:]}")
            if b"ready" in self.log_path.read_bytes():
                return time.time()
            time.sleep(0.01)
        raise RuntimeError("spec loop not ready")

    def stop(self) -> int | None:
        rc = self.procs.end(self.proc, sig=signal.SIGTERM, grace=5)
        self._log.close()
        return rc
