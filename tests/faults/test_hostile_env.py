"""Hostile environments: a stalled daemon, FIFOs, directories and symlinks where our files belong,
a log directory others can write into, a read-only log directory, and jobs that misbehave
towards their terminal, their pipes and their children.

Each test names the README promise it holds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import mount_tmpfs, unmount
from .kit import (
    CONFIG_REL,
    LOG_REL,
    PY,
    RUN_MARKER,
    Daemon,
    assert_one_line_error,
    cli,
    fast,
    job,
    note,
    read_state,
    run_processes,
    state_path,
    strict_records,
    wait_for,
    write_config,
)


def _today_history(log_dir: Path) -> Path:
    return log_dir / f"batch_{dt.date.today():%Y%m%d}.jsonl"


def _records_of(log_dir: Path, name: str) -> list[dict]:
    return [r for r in strict_records(log_dir) if r["job_name"] == name]


def _aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


def _error_lines(daemon: Daemon, *needles: str) -> list[str]:
    return [line for line in daemon.lines if "ERROR" in line and all(n in line for n in needles)]


# -- 1. a stalled daemon ----------------------------------------------------------------------------


def test_a_stalled_daemon_records_no_false_timeout(tmp_path: Path):
    """README: `timeout` is "timed out after N s": a run that ended by itself within its timeout is
    never one, even when the daemon was stopped (SIGSTOP, a swapped-out Pi) past the deadline."""
    config = write_config(tmp_path, [job("nap", "sleep 1", "interval", "3600", timeout=3)], settings=fast())
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        client = subprocess.Popen([PY, "-m", "insect_console", "-c", CONFIG_REL, "run-job", "nap"], cwd=tmp_path,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            daemon.wait_log("nap: started")
            os.kill(daemon.pid, signal.SIGSTOP)
            note(faults_injected=1)
            try:
                # the job ends after 1 s; its 3 s deadline passes while the daemon is stopped
                time.sleep(5)
            finally:
                os.kill(daemon.pid, signal.SIGCONT)
            record = wait_for(lambda: next(iter(_records_of(log_dir, "nap")), None), what="the nap record")
            client.wait(30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(10)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert (record["status"], record["exit_code"], record["error"]) == ("success", 0, None), record
    js = read_state(config)["jobs"]["nap"]
    assert (js["last_status"], js["error_count"]) == ("success", 0)
