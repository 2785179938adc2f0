"""Find and end every process of a run: its group, its descendants, and strays that left both.

Each run's processes carry `INSECT_CONSOLE_RUN=<run id>` in their environment. A process that
called `setsid` and was orphaned is neither in the run's group nor a descendant any more, but it
still carries the marker, so a scan with psutil finds it (the way Jenkins finds build strays).
"""

from __future__ import annotations

import logging
import os
import signal
import time

import psutil

log = logging.getLogger(__name__)

MARKER_ENV = "INSECT_CONSOLE_RUN"


def run_processes(run_id: str, root_pid: int | None = None, root_create_time: float | None = None) -> list[psutil.Process]:
    """Every live process of the run (the root included when it is still alive)."""
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    if root_pid:
        try:
            root = psutil.Process(root_pid)
            if root_create_time is None or abs(root.create_time() - root_create_time) < 0.05:
                found[root.pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
        except psutil.Error:
            pass
    group = root_pid if root_pid in found else None
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == me:
            continue
        try:
            if (group and os.getpgid(proc.pid) == group) or proc.environ().get(MARKER_ENV) == run_id:
                found[proc.pid] = proc
        except (psutil.Error, OSError):
            continue
    return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def end_run(run_id: str, root_pid: int | None, grace: float, root_create_time: float | None = None) -> int:
    """SIGTERM every process of the run, SIGKILL what is left after `grace`; returns survivors.

    Processes are signalled, never waited for with waitpid, so the runner that started the
    root still gets its exit status.
    """
    procs = run_processes(run_id, root_pid, root_create_time)
    group = root_pid if root_pid and (root_create_time is None or is_same_process(root_pid, root_create_time)) else None
    if group:
        _killpg(group, signal.SIGTERM)
    _signal_all(procs, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in procs):
            break
        time.sleep(0.05)
    # look again: a process may have forked during the grace
    procs = run_processes(run_id, root_pid, root_create_time)
    if procs:
        log.warning("run %s: %d process(es) ignored SIGTERM; sending SIGKILL", run_id, len(procs))
        if group:
            _killpg(group, signal.SIGKILL)
        _signal_all(procs, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in procs):
            time.sleep(0.02)
    survivors = run_processes(run_id, root_pid, root_create_time)
    if survivors:
        log.error("run %s: %d process(es) survived SIGKILL: %s", run_id, len(survivors), [p.pid for p in survivors])
    return len(survivors)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def process_identity(pid: int) -> float | None:
    """The create time of `pid`, which tells a live process from a later one with the same pid."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


_own: tuple[int, float | None] = (0, None)


def own_identity() -> float | None:
    """This process's create time (for the run entries it owns), read once per process."""
    global _own
    if _own[0] != os.getpid():  # a fork gets its own
        _own = (os.getpid(), process_identity(os.getpid()))
    return _own[1]


def is_same_process(pid: int | None, create_time: float | None) -> bool:
    if not pid or create_time is None:
        return False
    found = process_identity(pid)
    return found is not None and abs(found - create_time) < 0.05
