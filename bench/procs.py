"""Processes: the temp dir, starting children, ending every one of them, timing a child run.

Every process the benchmark starts goes through here, so that each one is ended at the end of
the run, also on Ctrl-C or an error, and nothing is left behind in the machine's process table
or file system. That guarantee is the whole concern of this module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import psutil

from bench.report import log

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
TAG_ENV = "INSECT_BENCH_TAG"
TAG = uuid.uuid4().hex


# -- temp dirs ------------------------------------------------------------------


class Workspace:
    """One temp dir for the whole run; removed at the end unless `keep`."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="insect-bench-"))
        self.keep = keep

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def cleanup(self) -> None:
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# -- processes -------------------------------------------------------------------


_PYCACHE: str | None = None


def use_bytecode_cache(directory: Path) -> None:
    """Children write and read their .pyc files in `directory` (PYTHONPYCACHEPREFIX), not next to
    the sources: the project's modules are then loaded from bytecode after their first import,
    as from an installed package, and nothing is written outside the temp dir."""
    global _PYCACHE
    _PYCACHE = str(directory)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env[TAG_ENV] = TAG
    if _PYCACHE:
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if extra:
        env.update(extra)
    return env


class Procs:
    """Every process the benchmark starts, so each one is ended, also on Ctrl-C or an error.

    Each child runs in its own session. Ending one takes a snapshot of its descendants (the
    jobs a daemon started run in sessions of their own), asks it to stop, and ends whatever of
    the snapshot is still alive, by pid. Every child also carries `INSECT_BENCH_TAG` in its
    environment, and `sweep()` ends any tagged process that is left (a job started after the
    snapshot, say).
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def spawn(self, argv: Sequence[str], *, cwd: Path | str, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
              env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
        p = subprocess.Popen(list(argv), cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, env=env or child_env(), start_new_session=True,
                             preexec_fn=preexec_fn)
        with self._lock:
            self._procs.append(p)
        return p

    def end(self, p: subprocess.Popen, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Stop `p` (signal, wait `grace`, SIGKILL) and whatever it started."""
        try:
            family = psutil.Process(p.pid).children(recursive=True)
        except psutil.Error:
            family = []
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        _kill_all(family)
        with self._lock:
            if p in self._procs:
                self._procs.remove(p)
        return p.returncode

    def end_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            self.end(p, grace=5.0)
        self.sweep()

    def sweep(self) -> None:
        me = os.getpid()
        tagged = []
        for proc in psutil.process_iter():
            try:
                if proc.pid != me and proc.environ().get(TAG_ENV) == TAG:
                    tagged.append(proc)
            except psutil.Error:
                continue
        if tagged:
            log(f"ending {len(tagged)} leftover process(es): {[p.pid for p in tagged]}")
        _kill_all(tagged)


def _kill_all(procs: Iterable[psutil.Process]) -> None:
    alive = []
    for proc in procs:
        try:
            if proc.is_running():
                proc.terminate()
                alive.append(proc)
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(alive, timeout=3)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=3)


@dataclass
class Timed:
    """A finished child: wall time, peak RSS, exit status."""

    wall: float
    hwm: int  # VmHWM last read from /proc while it ran (0 if it ended before the first read)
    maxrss: int  # ru_maxrss from wait4: exact, but never below the benchmark's own RSS at fork
    rc: int
    cpu: float = 0.0  # user + system CPU seconds of the child and the descendants it waited for
    stopped: str | None = None  # why it was killed before it ended (timeout, RSS cap), else None

    @property
    def peak_rss(self) -> int:
        """The child's peak RSS. wait4's ru_maxrss also counts the pages it shared with the
        benchmark between fork and exec, so the /proc reading is preferred when there is one."""
        return self.hwm or self.maxrss


_SELF_CMDLINE = Path("/proc/self/cmdline").read_bytes() if Path("/proc/self/cmdline").exists() else b""


def _vm_hwm(pid: int) -> int:
    """The child's VmHWM, or 0 while it has not exec'd yet (it still shows our own memory then)."""
    try:
        if Path(f"/proc/{pid}/cmdline").read_bytes() == _SELF_CMDLINE:
            return 0
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_timed(argv: Sequence[str], *, cwd: Path | str, stdout=subprocess.DEVNULL, env: dict[str, str] | None = None,
              timeout: float = 600, max_rss: int | None = None, preexec_fn: Callable[[], None] | None = None) -> Timed:
    """Run a child to its end, reading its peak RSS (VmHWM) every 2 ms while it runs.

    A child still running after `timeout` s, or whose peak RSS passes `max_rss` bytes, is
    killed; `Timed.stopped` says why (its wall time is then a lower bound).
    """
    t0 = time.perf_counter()
    p = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, env=env or child_env(),
                         start_new_session=True, preexec_fn=preexec_fn)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)  # a chatty stderr can't block it
    reader.start()
    deadline = time.monotonic() + timeout
    hwm = 0
    stopped = None
    try:
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            hwm = max(hwm, _vm_hwm(p.pid))
            if time.monotonic() > deadline or (max_rss is not None and hwm > max_rss):
                stopped = f"killed after {timeout:g} s" if time.monotonic() > deadline else f"killed at {hwm / 1e6:.0f} MB RSS"
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.002)
    except BaseException:  # Ctrl-C while it runs: it is ended here, not left to the sweep
        with contextlib.suppress(OSError):
            p.kill()
        p.wait()
        raise
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    if p.returncode != 0 and stopped is None:
        log(f"{' '.join(map(str, argv[:6]))}...: exit {p.returncode}: {b''.join(err).decode(errors='replace')[-300:]}")
    return Timed(wall, hwm, usage.ru_maxrss * 1024, p.returncode, usage.ru_utime + usage.ru_stime, stopped)


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def sleep_until(epoch: float) -> None:
    while True:
        left = epoch - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))
