"""The control socket under a flood of idle connections, at a low open-files limit.

README promises: the daemon runs the jobs ("so it can never slow the scheduler": a client is
never a reason for a run or a record to fail), and "an honest client" (a console, run-job)
still gets its answers. Limits: at most 64 clients, a client that sends nothing is closed after
a few seconds, the soft open-files limit is raised to the hard one at start.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from pathlib import Path

import psutil

from insect_console.control import ControlClient, DaemonGone, socket_path

from .kit import LOG_REL, Daemon, fast, job, note, strict_records, wait_for, write_config

FLOOD = 400
NOFILE = 200  # below the flood: without a bound on clients, the daemon runs out of descriptors


def _ticks(log_dir: Path) -> list[dict]:
    return [r for r in strict_records(log_dir) if r["job_name"] == "tick"]


def _status(path: Path) -> dict | None:
    """A status answer, or None while the daemon refuses the connection (it is full)."""
    try:
        client = ControlClient(path, timeout=10)
    except DaemonGone:
        return None
    try:
        return client.call("status")
    except DaemonGone:
        return None
    finally:
        client.close()


def test_an_idle_connection_flood_starves_no_run_and_no_honest_client(tmp_path: Path):
    write_config(tmp_path, [job("tick", "echo tick", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    path = socket_path(tmp_path / "config" / ".batch_config.run")
    daemon = Daemon(tmp_path).started()
    flood: list[socket.socket] = []
    try:
        wait_for(lambda: len(_ticks(log_dir)) >= 1, what="a run before the flood")
        psutil.Process(daemon.pid).rlimit(psutil.RLIMIT_NOFILE, (NOFILE, NOFILE))  # nothing to raise to
        deadline = time.monotonic() + 20
        while len(flood) < FLOOD and time.monotonic() < deadline:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(path))
            except OSError:  # the backlog is full for a moment (or for good, once the daemon stops accepting)
                sock.close()
                time.sleep(0.002)
                continue
            flood.append(sock)
        note(faults_injected=1)
        assert len(flood) >= NOFILE // 2
        n = len(_ticks(log_dir))
        wait_for(lambda: len(_ticks(log_dir)) >= n + 3, timeout=60, what="runs recorded during the flood")
        answer = wait_for(lambda: _status(path), timeout=60, what="a status answer for an honest client")
        assert answer["pid"] == daemon.pid
        assert daemon.terminate() == 0
    finally:
        for sock in flood:
            sock.close()
        daemon.stop()
    after = _ticks(log_dir)[n:]
    assert after and all(r["status"] == "success" for r in after), [r.get("error") for r in after if r["status"] != "success"][:3]
    refused = [line for line in daemon.lines if "refusing new connections" in line]
    assert len(refused) == 1, refused[:5]
    assert "Traceback" not in daemon.log
    assert "Too many open files" not in daemon.log


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(tmp_path: Path):
    """systemd starts services at a soft limit of 1024 open files; the daemon raises it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, 256)
    if hard != resource.RLIM_INFINITY and hard <= low:
        low = hard // 2
    write_config(tmp_path, [job("tick", "true", enabled=False)], settings=fast())
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        daemon = Daemon(tmp_path)  # inherits the low soft limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        daemon.started()
        got = psutil.Process(daemon.pid).rlimit(psutil.RLIMIT_NOFILE)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert got[1] == hard and got[0] > low, (low, got)
    with contextlib.suppress(OSError):
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
        assert got[0] == (hard if hard != resource.RLIM_INFINITY else nr_open)
