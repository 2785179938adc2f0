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
    """`strict_records` of the regular history files (reading a FIFO would block the test)."""
    if any(not p.is_file() or p.is_symlink() for p in log_dir.glob("batch_*.jsonl")):
        regular = [p for p in sorted(log_dir.glob("batch_*.jsonl")) if p.is_file() and not p.is_symlink()]
        out = []
        for path in regular:
            data = path.read_bytes()
            assert not data or data.endswith(b"\n"), path
            out += [json.loads(line) for line in data.split(b"\n")[:-1]]
        return [r for r in out if r["job_name"] == name]
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


# -- 2. FIFOs, directories and symlinks where our files belong -----------------------------------------


def _swap_for_fifo(path: Path) -> None:
    """Put a FIFO where `path` is, in one rename (as a stray `mkfifo` or a bad restore would)."""
    tmp = path.with_name(path.name + ".fifo-tmp")
    os.mkfifo(tmp, 0o600)
    os.rename(tmp, path)


def _status_answers(base: Path) -> None:
    """An honest client gets a status answer from the daemon (through `list`, which asks it)."""
    from insect_console.control import ControlClient, socket_path

    client = ControlClient(socket_path(base / "config" / ".batch_config.run"), timeout=20)
    try:
        assert client.call("status")["pid"]
    finally:
        client.close()


def test_fifo_as_the_state_file_is_set_aside_and_scheduling_goes_on(tmp_path: Path):
    """README: run state is written atomically under a lock and "a corrupt file is reported and
    kept aside"; a FIFO there once hung the scheduler inside the state lock for good."""
    config = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 2, what="two runs before the fault")
        _swap_for_fifo(state_path(config))
        note(faults_injected=1)
        n = len(_records_of(log_dir, "tick"))
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= n + 3, what="runs after the FIFO appeared")
        _status_answers(tmp_path)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    aside = _aside(state_path(config))
    assert len(aside) == 1 and stat.S_ISFIFO(aside[0].lstat().st_mode), aside
    assert len(_error_lines(daemon, "state file", "FIFO")) == 1, daemon.log_tail()
    assert stat.S_ISREG(state_path(config).lstat().st_mode)
    assert read_state(config)["jobs"]["tick"]["last_status"] == "success"
    assert "Traceback" not in daemon.log


def test_fifo_as_the_config_file_is_refused_in_one_line_and_never_overwritten(tmp_path: Path):
    """README: "A config that does not parse or validate is reported in one line ... and never
    rewritten; a running daemon keeps its previous jobs"."""
    config = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run before the fault")
        _swap_for_fifo(config)
        note(faults_injected=1)
        daemon.wait_log("config not reloaded")
        n = len(_records_of(log_dir, "tick"))
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= n + 2, what="runs with the previous jobs")
        for argv in (["list"], ["add", "x", "true", "--type", "interval", "--time", "60"], ["disable", "tick"]):
            assert_one_line_error(cli(tmp_path, *argv, timeout=30), "batch_config.toml", "not a regular file")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert stat.S_ISFIFO(config.lstat().st_mode)  # refused, never replaced
    assert "Traceback" not in daemon.log


def test_fifo_as_a_history_file_is_set_aside_and_records_go_on(tmp_path: Path):
    """README: "Each run appends one JSON line to logs/batch/batch_YYYYMMDD.jsonl"; `history`
    reads past runs. A FIFO as today's file once swallowed the records; as an older file it
    hung `history`."""
    write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    log_dir.mkdir(parents=True, mode=0o700)
    os.mkfifo(log_dir / f"batch_{dt.date.today() - dt.timedelta(days=1):%Y%m%d}.jsonl", 0o600)  # yesterday's file
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run before the fault")
        today = _today_history(log_dir)
        _swap_for_fifo(today)
        note(faults_injected=2)
        wait_for(lambda: today.exists() and stat.S_ISREG(today.lstat().st_mode) and _records_of(log_dir, "tick"), what="a new history file")
        n = len(_records_of(log_dir, "tick"))
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= n + 2, what="records after the FIFO appeared")
        done = cli(tmp_path, "history", "--limit", "3", timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("tick") == 3
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    aside = _aside(today)
    assert len(aside) == 1 and stat.S_ISFIFO(aside[0].lstat().st_mode), aside
    assert len(_error_lines(daemon, "history file", "FIFO")) == 1, daemon.log_tail()
    assert "can't write history" not in daemon.log


@pytest.mark.parametrize("lock", ["scheduler.lock", "state.lock", "jobs/tick.lock"])
def test_fifo_as_a_lock_file_is_set_aside(tmp_path: Path, lock: str):
    """README: "One scheduler per config (a flock held for its lifetime)" and "a per-job lock is
    shared by the daemon, the console and run-job". A FIFO as scheduler.lock once hung `list`."""
    config = write_config(tmp_path, [job("tick", "echo hi")], settings=fast())
    path = config.parent / ".batch_config.run" / lock
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(config.parent / ".batch_config.run", 0o700)
    os.mkfifo(path, 0o600)
    note(faults_injected=1)
    assert cli(tmp_path, "list", timeout=30).returncode == 0
    done = cli(tmp_path, "run-job", "tick", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    daemon = Daemon(tmp_path).started()
    try:
        _status_answers(tmp_path)
        assert cli(tmp_path, "run-job", "tick", timeout=30).returncode == 0
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert stat.S_ISREG(path.lstat().st_mode)
    assert len(_aside(path)) == 1
    assert [r["status"] for r in _records_of(tmp_path / LOG_REL, "tick")] == ["success", "success"]


_OUTPUT_SCRIPT = r"""
import json, os, sys
from pathlib import Path
from insect_console.jobs import make_job
from insect_console.runner import JobRun
out = Path(sys.argv[1])
job = make_job({"name": "x", "command": "echo through", "schedule_type": "interval", "schedule_time": "60"})
outcome = JobRun(job, run_id="20250101T000000-abcdef", timeout=30, kill_grace=1, output_file=out).execute()
print(json.dumps({"status": outcome.status, "output": outcome.output}))
"""


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_fifo_or_symlink_as_an_output_file_is_set_aside(tmp_path: Path, kind: str):
    """README: "The full output (stdout and stderr) of each run is in logs/batch/output/...":
    in a file of our own, never through a FIFO (which once blocked the run before it started)
    or a symlink (which the daemon, often root, followed)."""
    out = tmp_path / "output" / "x.log"
    out.parent.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("not yours\n")
    if kind == "fifo":
        os.mkfifo(out, 0o600)
    else:
        os.symlink(victim, out)
    note(faults_injected=1)
    done = subprocess.run([PY, "-c", _OUTPUT_SCRIPT, str(out)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"status": "success", "output": "through\n"}
    assert stat.S_ISREG(out.lstat().st_mode) and out.read_text() == "through\n"
    assert victim.read_text() == "not yours\n"
    assert len(_aside(out)) == 1
    assert sum("not a regular file" in line for line in done.stderr.splitlines()) == 1, done.stderr


def test_a_directory_as_the_state_file_is_set_aside(tmp_path: Path):
    """README: run state "is kept in config/batch_config.state.json" and every change is
    written: a directory there once made every state write fail while the daemon went on."""
    config = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run before the fault")
        state = state_path(config)
        tmp = state.with_name("dir-tmp")
        tmp.mkdir(mode=0o700)
        state.unlink()
        tmp.rename(state)
        note(faults_injected=1)
        swapped = dt.datetime.now().astimezone()
        wait_for(lambda: state.is_file() and dt.datetime.fromisoformat(read_state(config)["jobs"].get("tick", {}).get("last_run", "2000-01-01T00:00:00+00:00")) > swapped,
                 what="the state written again after the directory appeared")
        _status_answers(tmp_path)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    aside = _aside(state)
    assert len(aside) == 1 and aside[0].is_dir(), aside
    assert len(_error_lines(daemon, "state file", "directory")) == 1, daemon.log_tail()
    assert "can't write state file" not in daemon.log


@pytest.mark.parametrize("target", ["root-file", "/dev/null"])
def test_a_symlink_to_a_root_owned_file_as_the_state_file_is_set_aside(tmp_path: Path, target: str):
    """README: "A config or state file that is writable by group or others, or owned by another
    user, is refused"; a symlink is not our file either: its target is never read as our state
    (a planted one carried fake runs and failure counts) and never written."""
    config = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    if target == "root-file":
        victim = tmp_path / "root-owned.json"
        victim.write_text(json.dumps({"version": 1, "jobs": {"tick": {"error_count": 42, "last_status": "error"}}, "running": {}}))
        os.chmod(victim, 0o644)
        os.chown(victim, 0, 0)
    else:
        victim = Path(target)
    before = (victim.lstat().st_mode, victim.lstat().st_uid, victim.read_bytes() if victim.is_file() else None)
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run before the fault")
        state = state_path(config)
        tmp = state.with_name("link-tmp")
        os.symlink(victim, tmp)
        os.rename(tmp, state)
        note(faults_injected=1)
        n = len(_records_of(log_dir, "tick"))
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= n + 2 and not state.is_symlink(), what="runs after the symlink appeared")
        _status_answers(tmp_path)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert (victim.lstat().st_mode, victim.lstat().st_uid, victim.read_bytes() if victim.is_file() else None) == before
    assert len(_error_lines(daemon, "state file", "symbolic link")) == 1, daemon.log_tail()
    assert [p for p in _aside(state) if p.is_symlink()]
    js = read_state(config)["jobs"]["tick"]
    assert (js["last_status"], js["error_count"]) == ("success", 0), js
    assert "Traceback" not in daemon.log


# -- 4. symlinks and a log directory others can write into ----------------------------------------------


def test_a_symlinked_history_file_is_never_written_through(tmp_path: Path):
    """README: "Files insect-console creates are private"; the daemon (often root) appends only
    to a history file of its own, never to what a `batch_*.jsonl` symlink points at."""
    write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    victim = tmp_path / "victim.conf"
    victim.write_text("# someone else's file\n")
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run before the fault")
        today = _today_history(log_dir)
        tmp = log_dir / "link-tmp"
        os.symlink(victim, tmp)
        os.rename(tmp, today)
        note(faults_injected=1)
        wait_for(lambda: not today.is_symlink() and len(_records_of(log_dir, "tick")) >= 2, what="records in a file of our own")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert victim.read_text() == "# someone else's file\n"
    assert len(_error_lines(daemon, "history file", "symbolic link")) == 1, daemon.log_tail()
    assert [p for p in _aside(today) if p.is_symlink()]


def test_a_symlinked_lock_file_is_never_followed(tmp_path: Path):
    """README: "a per-job lock is shared by the daemon, the console and run-job"; a symlink in
    its place once made root create (O_CREAT) the file it pointed to, anywhere."""
    config = write_config(tmp_path, [job("tick", "echo hi")], settings=fast())
    lock = config.parent / ".batch_config.run" / "jobs" / "tick.lock"
    lock.parent.mkdir(parents=True, mode=0o700)
    os.chmod(lock.parent.parent, 0o700)
    victim = tmp_path / "etc" / "cron.d-evil"
    victim.parent.mkdir()
    os.symlink(victim, lock)
    note(faults_injected=1)
    done = cli(tmp_path, "run-job", "tick", timeout=60)
    assert done.returncode == 0, done.stderr
    assert not victim.exists()
    assert stat.S_ISREG(lock.lstat().st_mode)
    assert sum("symbolic link" in line for line in done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize("mode", [0o770, 0o757, 0o1777], ids=oct)
def test_a_log_directory_others_can_write_into_is_refused(tmp_path: Path, mode: int):
    """README: files are private, "the log and lock directories 0700"; one that group or others
    can write into (where they could plant a symlink for the daemon) is refused, as the config
    is, with a line that says how to fix it."""
    write_config(tmp_path, [job("tick", "echo hi", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    log_dir.mkdir(parents=True)
    os.chmod(log_dir, mode)
    note(faults_injected=1)
    for argv in (["scheduler", "--no-ui"], ["run-job", "tick"], ["run-job", "--local", "tick"]):
        line = assert_one_line_error(cli(tmp_path, *argv, timeout=60), str(log_dir), f"chmod 700 {log_dir}")
        assert "log directory" in line and "writable by group or others" in line
    assert list(log_dir.iterdir()) == []
    assert stat.S_IMODE(log_dir.stat().st_mode) == mode  # reported, not silently "fixed"
    os.chmod(log_dir, 0o700)
    assert cli(tmp_path, "run-job", "tick", timeout=60).returncode == 0


def test_a_daemon_keeps_its_log_directory_when_a_reload_names_one_others_can_write(tmp_path: Path):
    """README: "a running daemon keeps its previous jobs" when the config is not good."""
    config = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run")
        write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast(log_dir=str(open_dir)))
        note(faults_injected=1)
        daemon.wait_log("config not reloaded")
        n = len(_records_of(log_dir, "tick"))
        wait_for(lambda: len(_records_of(log_dir, "tick")) >= n + 2, what="runs recorded in the old log directory")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert list(open_dir.iterdir()) == []
    assert any("chmod 700" in line for line in _error_lines(daemon, "config not reloaded")), daemon.log_tail()
    assert config.exists()


# -- also: a read-only log directory, jobs that misbehave towards their tty, pipes and children -----------


def test_a_read_only_log_directory_stops_no_run_and_is_logged_once(tmp_path: Path):
    """README: history and output writes that fail are logged once per outage ("runs go on;
    records are lost until this is fixed"), and writing resumes when the directory is writable."""
    log_dir = tmp_path / "disk" / "logs"
    if not mount_tmpfs(log_dir, "8M"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        write_config(tmp_path, [job("tick", "echo tick", "interval", "1")], settings=fast(log_dir=str(log_dir)))
        daemon = Daemon(tmp_path).started()
        try:
            wait_for(lambda: len(_records_of(log_dir, "tick")) >= 1, what="a run before the fault")
            subprocess.run(["mount", "-o", "remount,ro", str(log_dir)], check=True)
            note(faults_injected=1)
            n = daemon.count("tick: started")
            wait_for(lambda: daemon.count("tick: started") >= n + 3, what="runs while the log directory is read-only")
            records_during = len(_records_of(log_dir, "tick"))
            subprocess.run(["mount", "-o", "remount,rw", str(log_dir)], check=True)
            wait_for(lambda: len(_records_of(log_dir, "tick")) > records_during, what="records once it is writable again")
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
    finally:
        unmount(log_dir)
    assert len([line for line in daemon.lines if "can't write history" in line]) == 1, daemon.log_tail()
    assert len([line for line in daemon.lines if "can't write run output" in line]) == 1, daemon.log_tail()
    assert daemon.count("history writes work again") == 1
    assert "Traceback" not in daemon.log


def _run_on_a_terminal(base: Path, *args: str) -> tuple[int, bytes]:
    """`python -m insect_console args` with a pseudo-terminal as its controlling terminal and
    stdin/stdout/stderr, as an operator's SSH session; returns (exit code, what the terminal got)."""
    master, slave = pty.openpty()

    def become_terminal_owner() -> None:
        os.setsid()
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([PY, "-m", "insect_console", "-c", CONFIG_REL, *args], cwd=base, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=become_terminal_owner, close_fds=True)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal closed it
                    break
                if not data:
                    break
                seen += data
            elif proc.poll() is not None:
                break
        return proc.wait(30), bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


def test_a_job_writing_to_dev_tty_never_reaches_the_operators_terminal(tmp_path: Path):
    """README: "each run is its own session/process group": a job has no controlling terminal,
    so what it writes to /dev/tty can't land on the console or the operator's SSH terminal, and
    its failure to open it is just the job's own error output."""
    write_config(tmp_path, [job("tty", "echo SECRET-ON-TTY > /dev/tty; echo to stdout", shell=True)], settings=fast())
    note(faults_injected=1)
    rc, seen = _run_on_a_terminal(tmp_path, "run-job", "--local", "tty")
    assert b"to stdout" in seen, seen
    assert b"SECRET-ON-TTY" not in seen, seen
    assert rc == 0, seen
    (record,) = _records_of(tmp_path / LOG_REL, "tty")
    assert record["status"] == "success" and record["output"] == "to stdout\n"
    assert "SECRET-ON-TTY" not in Path(record["output_file"]).read_text()


@pytest.mark.parametrize("closes", ["stdout", "both"])
def test_a_job_that_closes_its_output_and_keeps_running_still_times_out(tmp_path: Path, closes: str):
    """README: a run that passes its timeout is `timeout` ("timed out after N s") and its tree is
    ended. A job that closed stdout and stderr and went on once made the run wait for it without
    any timeout: no record, the job never run again."""
    redirect = "exec >&-" if closes == "stdout" else "exec >&- 2>&-"
    write_config(tmp_path, [job("mute", f"echo before; {redirect}; sleep 300", shell=True, timeout=2)], settings=fast())
    note(faults_injected=1)
    done = cli(tmp_path, "run-job", "mute", timeout=60)
    assert done.returncode == 124, done.stderr
    (record,) = _records_of(tmp_path / LOG_REL, "mute")
    assert (record["status"], record["error"], record["output"]) == ("timeout", "timed out after 2 s", "before\n")
    assert run_processes(record["run_id"]) == []


def test_a_job_that_closes_its_output_is_waited_for_to_its_exit(tmp_path: Path):
    """The run is the program's: closing its output does not end it, its exit does."""
    write_config(tmp_path, [job("mute", "exec >&- 2>&-; sleep 1; exit 3", shell=True, timeout=30)], settings=fast())
    done = cli(tmp_path, "run-job", "mute", timeout=60)
    assert done.returncode == 1, done.stderr
    (record,) = _records_of(tmp_path / LOG_REL, "mute")
    assert (record["status"], record["exit_code"]) == ("error", 3)
    assert record["duration_s"] >= 1


def test_a_background_child_left_after_exit_0_is_ended_with_its_run(tmp_path: Path):
    """README: "A job never runs twice at once" and a run's processes are ended with it: a
    background child still holding the run's output after the program exited once lived on,
    unsupervised, beside the job's next runs."""
    config = write_config(tmp_path, [job("fork", "echo main; sleep 300 & setsid sleep 301 & exit 0", "interval", "3600", shell=True)], settings=fast())
    note(faults_injected=1)
    done = cli(tmp_path, "run-job", "fork", timeout=60)
    assert done.returncode == 0, done.stderr
    (record,) = _records_of(tmp_path / LOG_REL, "fork")
    assert (record["status"], record["exit_code"], record["output"]) == ("success", 0, "main\n")
    assert run_processes(record["run_id"]) == []  # ended before the run was recorded
    assert read_state(config)["running"] == {}
    assert "left" in done.stderr and "ending them" in done.stderr, done.stderr
