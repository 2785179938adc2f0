"""Disk full on the history, state and output files while the daemon runs.

Two ways to make writes fail, both exercised when the runner is root:
- `tmpfs`: the config, state and logs live on a 1 MiB tmpfs that the test fills (real ENOSPC);
- `inject` (also the fallback where mount is not permitted): today's history file is swapped
  for a symlink to /dev/full (ENOSPC), and the daemon's RLIMIT_FSIZE soft limit is set to 1
  byte with prlimit, so its state and output-file writes fail too (EFBIG).
Space then returns, and the daemon must write again.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from insect_console.history import HistoryQuery, HistoryReader

from .conftest import mount_tmpfs, unmount
from .kit import (
    WAIT,
    TAG_ENV,
    Daemon,
    describe,
    fast,
    job,
    kill_all,
    note,
    parse_toml,
    processes_with_env,
    read_state,
    strict_records,
    wait_for,
    write_config,
)

OUTPUT_BYTES = 6000  # each record carries 6000 bytes of output: a record is bigger than a page
TICK = f"head -c {OUTPUT_BYTES} /dev/zero | tr '\\0' x; echo"


@dataclass
class Outcome:
    mode: str
    base: Path
    config: Path
    log_dir: Path
    config_bytes: bytes = b""
    history_before: dict[str, bytes] = field(default_factory=dict)
    outputs_before: dict[Path, bytes] = field(default_factory=dict)
    started_during: int = 0
    freed_at: dt.datetime | None = None
    log: str = ""
    rc: int | None = None


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full, down to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)
    return filler


def _started(daemon: Daemon) -> int:
    return daemon.count("tick: started")


def _scenario(mode: str, base: Path) -> Outcome:
    disk = base / "disk"
    if mode == "tmpfs":
        if not mount_tmpfs(disk, "1M"):
            pytest.skip("mounting a tmpfs needs root; the inject mode covers this runner")
    else:
        disk.mkdir()
    # the tmpfs is unmounted by the fixture, after the checks have read the files
    log_dir = disk / "logs"
    config = write_config(base, [job("tick", TICK, "interval", "1", shell=True)], settings=fast(log_dir=str(log_dir)), rel="disk/config/batch_config.toml")
    out = Outcome(mode, base, config, log_dir, config_bytes=config.read_bytes())
    daemon = Daemon(base, config="disk/config/batch_config.toml").started()
    try:
        wait_for(lambda: len(strict_records(log_dir)) >= 2, timeout=WAIT, what="two records before the fault")
        # the fault
        if mode == "tmpfs":
            filler = _fill(disk)
        else:
            today = log_dir / f"batch_{dt.date.today():%Y%m%d}.jsonl"
            aside = log_dir / "real-history"
            os.link(today, aside)  # the real file's inode, kept while the path points at /dev/full
            tmp_link = log_dir / "full-link"
            os.symlink("/dev/full", tmp_link)
            os.rename(tmp_link, today)
            proc = psutil.Process(daemon.pid)
            hard = proc.rlimit(psutil.RLIMIT_FSIZE)[1]
            proc.rlimit(psutil.RLIMIT_FSIZE, (1, hard))
        note(faults_injected=3)  # history, state and output writes fail
        for path in log_dir.glob("batch_*.jsonl"):
            if not path.is_symlink():
                out.history_before[path.name] = path.read_bytes()
        if mode == "inject":
            out.history_before[today.name] = aside.read_bytes()
        out.outputs_before = {p: p.read_bytes() for p in (log_dir / "output").glob("*/*.log")}
        n0 = _started(daemon)
        wait_for(lambda: _started(daemon) >= n0 + 3, timeout=WAIT, what="runs going on while writes fail")
        out.started_during = _started(daemon) - n0
        # space returns
        out.freed_at = dt.datetime.now().astimezone()
        if mode == "tmpfs":
            filler.unlink()
        else:
            proc.rlimit(psutil.RLIMIT_FSIZE, (hard, hard))
            os.rename(aside, today)
        n1 = _started(daemon)
        wait_for(lambda: _started(daemon) >= n1 + 2, timeout=WAIT, what="runs after space returned")
        wait_for(
            lambda: any(
                dt.datetime.fromisoformat(r["start_time"]) > out.freed_at
                for r in HistoryReader(log_dir).records(HistoryQuery(limit=None))
            ),
            timeout=WAIT, what="a record written after space returned",
        )
        out.rc = daemon.terminate()
    finally:
        daemon.stop()
        out.log = daemon.log
    reader = HistoryReader(log_dir)
    records = list(reader.records(HistoryQuery(limit=None)))
    note(runs_recorded=len(records), records_lost=reader.skipped, runs_during_outage=out.started_during)
    return out


@pytest.fixture(scope="module", params=["tmpfs", "inject"])
def outcome(request, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp(f"diskfull-{request.param}")
    tag = uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TAG_ENV, tag)
        try:
            yield _scenario(request.param, base)
        finally:
            leftovers = processes_with_env(TAG_ENV, tag)
            kill_all(leftovers)
            if (base / "disk").is_mount():
                unmount(base / "disk")
            assert not leftovers, describe(leftovers)


def _errors(out: Outcome, *needles: str) -> list[str]:
    return [line for line in out.log.splitlines() if any(n in line for n in needles)]


def test_runs_go_on_and_daemon_stops_cleanly(outcome: Outcome):
    assert outcome.started_during >= 3
    assert outcome.rc == 0, outcome.log[-3000:]
    assert "Traceback" not in outcome.log, outcome.log[-3000:]


def test_history_failure_logged_once(outcome: Outcome):
    lines = _errors(outcome, "can't write history")
    assert len(lines) == 1, lines
    assert len(_errors(outcome, "history writes work again")) == 1


def test_state_failure_logged_once(outcome: Outcome):
    lines = _errors(outcome, "can't write state file")
    assert len(lines) == 1, f"{len(lines)} lines: {lines[:3]}"


def test_output_failure_logged_once(outcome: Outcome):
    lines = _errors(outcome, "output file")
    assert len(lines) == 1, f"{len(lines)} lines: {lines[:3]}"


def test_short_output_file_is_never_silent(outcome: Outcome):
    """A run's output file is complete, or the failure to write it was logged (a short write, as
    at RLIMIT_FSIZE in the inject mode, once dropped the rest of the output silently)."""
    expected = OUTPUT_BYTES + 1
    short = [p for p in (outcome.log_dir / "output").glob("*/*.log") if p.stat().st_size < expected]
    if short:
        assert _errors(outcome, "output file"), f"{len(short)} truncated output file(s), no error logged"


def test_config_and_state_intact(outcome: Outcome):
    assert outcome.config.read_bytes() == outcome.config_bytes
    parse_toml(outcome.config.read_bytes())
    state = read_state(outcome.config)  # parses
    assert state["running"] == {}
    for path, data in outcome.outputs_before.items():
        assert path.read_bytes() == data, path


def test_history_never_corrupted(outcome: Outcome):
    """A record cut short by ENOSPC (tmpfs mode: bigger than the room left in the file's last
    page) once stayed as half a line, and the first record after the outage was glued to it."""
    for name, before in outcome.history_before.items():
        now = (outcome.log_dir / name).read_bytes()
        assert now.startswith(before), name
    strict_records(outcome.log_dir)


def test_writing_resumes_when_space_returns(outcome: Outcome):
    after = [
        r for r in HistoryReader(outcome.log_dir).records(HistoryQuery(limit=None))
        if dt.datetime.fromisoformat(r["start_time"]) > outcome.freed_at
    ]
    assert after and all(r["status"] == "success" for r in after), after[:2]
    assert any(len(r["output"]) == OUTPUT_BYTES + 1 for r in after)
    state = read_state(outcome.config)
    assert dt.datetime.fromisoformat(state["jobs"]["tick"]["last_run"]) > outcome.freed_at
    fresh = [r for r in after if r.get("output_file")]
    assert fresh and all(Path(r["output_file"]).stat().st_size == OUTPUT_BYTES + 1 for r in fresh)
