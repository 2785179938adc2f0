"""Broken files: a truncated or garbage config, a corrupt state file, malformed history lines."""

from __future__ import annotations

import datetime as dt
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from insect_console import records
from insect_console.config import ConfigStore
from insect_console.engine import Engine
from insect_console.errors import ConfigError
from insect_console.history import HistoryQuery, HistoryReader
from insect_console.jobs import make_job

from .kit import (
    CLI_TIMEOUT,
    WAIT,
    LOG_REL,
    Daemon,
    assert_one_line_error,
    cli,
    fast,
    job,
    note,
    read_state,
    state_path,
    strict_records,
    wait_for,
    write_config,
)

GOOD_JOBS = [job("tick", "true", "interval", "1"), job("nightly", "true", "daily", "02:00")]


def _corruptions(good: bytes) -> dict[str, bytes]:
    return {
        "truncated": good[: len(good) // 2],
        "cut-in-a-string": good[: good.index(b'"true"') + 3],
        "garbage": bytes(range(256)) * 4,
        "not-toml": b"[[jobs]\nname = \n",
        "bad-job": good.replace(b'"02:00"', b'"25:00"'),
        "unknown-key": good + b"\n[surprise]\nx = 1\n",
        "nul-bytes": good[:40] + b"\0\0\0" + good[40:],
    }


COMMANDS = [
    ["list"],
    ["list", "--json"],
    ["add", "new", "true", "--type", "interval", "--time", "60"],
    ["edit", "tick", "--time", "2"],
    ["enable", "nightly"],
    ["disable", "tick"],
    ["remove", "nightly"],
    ["run-job", "tick"],
    ["cron", "nightly"],
    ["history"],
    ["systemd"],
    ["scheduler", "--no-ui"],
]


QUICK = [["list"], ["add", "new", "true", "--type", "interval", "--time", "60"], ["disable", "tick"], ["scheduler", "--no-ui"]]


@pytest.mark.parametrize("kind", list(_corruptions(b'x "true" y')))
def test_broken_config_reported_and_never_overwritten(tmp_path: Path, kind: str):
    """Every command (all of them on a truncated file, a sample on the others) refuses it."""
    config = write_config(tmp_path, GOOD_JOBS, settings=fast())
    broken = _corruptions(config.read_bytes())[kind]
    config.write_bytes(broken)
    note(faults_injected=1)
    with ThreadPoolExecutor(4) as pool:
        commands = COMMANDS if kind == "truncated" else QUICK
        results = list(pool.map(lambda argv: (argv, cli(tmp_path, *argv, timeout=60)), commands))
    for argv, done in results:
        line = assert_one_line_error(done)
        assert "batch_config.toml" in line, (argv, line)
        assert config.read_bytes() == broken, argv
    assert not state_path(config).exists() or json.loads(state_path(config).read_bytes())
    assert not (tmp_path / LOG_REL).exists() or not list((tmp_path / LOG_REL).glob("batch_*.jsonl"))


def test_engine_changes_refused_on_a_broken_config(tmp_path: Path):
    config = write_config(tmp_path, GOOD_JOBS, settings=fast())
    engine = Engine(config, base_dir=tmp_path)
    broken = config.read_bytes()[:-7]
    config.write_bytes(broken)
    note(faults_injected=1)
    new = make_job(job("new", "true"))
    for change in (lambda: engine.add_job(new), lambda: engine.remove_job("tick"), lambda: engine.set_enabled("tick", False), lambda: engine.replace_job("tick", new)):
        with pytest.raises(ConfigError):
            change()
        assert config.read_bytes() == broken
    engine.reload()  # reported, the previous jobs are kept
    assert [j.name for j in engine.config.jobs] == ["tick", "nightly"]


def test_config_broken_while_the_daemon_runs(tmp_path: Path):
    """The daemon reports it, keeps its jobs running, never rewrites the file, and reloads a fix."""
    config = write_config(tmp_path, GOOD_JOBS, settings=fast())
    good = config.read_bytes()
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(strict_records(log_dir)) >= 1, timeout=WAIT, what="a first run")
        broken = good[: len(good) // 2]
        tmp = config.with_name("edit.tmp")
        tmp.write_bytes(broken)
        os.chmod(tmp, 0o600)
        os.replace(tmp, config)  # as an editor saves it
        note(faults_injected=1)
        daemon.wait_log("config not reloaded")
        n = len(strict_records(log_dir))
        wait_for(lambda: len(strict_records(log_dir)) >= n + 2, timeout=WAIT, what="runs going on with the previous jobs")
        assert config.read_bytes() == broken
        fixed = write_config(tmp_path, GOOD_JOBS + [job("extra", "true", "interval", "1")], settings=fast())
        wait_for(lambda: any(r["job_name"] == "extra" for r in strict_records(log_dir)), timeout=WAIT, what="the fixed config to be used")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert [j.name for j in ConfigStore(fixed, tmp_path).load(create=False).jobs] == ["tick", "nightly", "extra"]
    lines = [line for line in daemon.log.splitlines() if "config not reloaded" in line]
    assert lines and all("batch_config.toml" in line for line in lines)
    records = strict_records(log_dir)
    note(runs_recorded=len(records))


STATE_CORRUPTIONS = {
    "truncated": b'{"version": 1, "jobs": {"tick": {"last_run": "2024-05-0',
    "garbage": b"\x89PNG\r\n\x1a\n\x00\x00 not a state file \xff\xfe",
    "wrong-shape": b'{"jobs": [], "running": 3}',
    "json-array": b"[1, 2, 3]",
}


def test_corrupt_state_kept_aside_while_the_daemon_starts(tmp_path: Path):
    config = write_config(tmp_path, GOOD_JOBS, settings=fast())
    config_bytes = config.read_bytes()
    bad = STATE_CORRUPTIONS["truncated"]
    state = state_path(config)
    state.write_bytes(bad)
    os.chmod(state, 0o600)
    note(faults_injected=1)
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: len(strict_records(log_dir)) >= 2, timeout=WAIT, what="runs after a corrupt state file")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    reported = [line for line in daemon.log.splitlines() if "corrupt" in line and "state" in line]
    assert reported, daemon.log_tail()
    aside = list(state.parent.glob(state.name + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == bad
    assert aside[0].name in reported[0]
    assert read_state(config)["jobs"]["tick"]["last_status"] == "success"
    assert config.read_bytes() == config_bytes
    note(runs_recorded=len(strict_records(log_dir)))


@pytest.mark.parametrize("kind", list(STATE_CORRUPTIONS))
def test_corrupt_state_reported_by_the_cli(tmp_path: Path, kind: str):
    config = write_config(tmp_path, GOOD_JOBS, settings=fast())
    state = state_path(config)
    state.write_bytes(STATE_CORRUPTIONS[kind])
    os.chmod(state, 0o600)
    note(faults_injected=1)
    done = cli(tmp_path, "list", timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "corrupt" in done.stderr and "kept aside" in done.stderr, done.stderr
    aside = list(state.parent.glob(state.name + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == STATE_CORRUPTIONS[kind]
    assert "tick" in done.stdout


# -- malformed history lines -------------------------------------------------------------------


def _record(name: str, n: int, status: str = "success", run_id: str | None = None) -> dict:
    """A half-second run on 2026-01-02, made by the engine's own constructor."""
    start = dt.datetime(2026, 1, 2, 3, 4, n)
    return records.finished(name, start=start, end=start + dt.timedelta(seconds=0.5), status=status, output=f"out {n} é",
                            error=None if status == "success" else "exit status 1", run_id=run_id or f"r{n}")


MALFORMED = [
    b"garbage that is not json",
    b'{"job_name": "tick", "start_time": "2026-01-02T03:0',  # truncated
    b"\xff\xfe\x00binary\x80\x81",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"job_name": 5, "status": "success"}',
    b'{"status": "success"}',
    b'{"job_name": "tick"}',
    b'{"job_name": "tick", "status": "success", "output": "\xff\xfe"}',  # not UTF-8 inside a string
    b"{" * 50000,  # deep nesting
    b"\x1b[2J\x1b]0;pwned\x07",
]


def _write_history(log_dir: Path, truncated_tail: bool) -> tuple[list[dict], int]:
    """A daily file mixing valid records and malformed lines; returns (valid newest first, malformed)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(log_dir, 0o700)
    valid: list[dict] = []
    lines: list[bytes] = []
    for n, bad in enumerate(MALFORMED):
        record = _record("tick" if n % 2 else "other", n, "success" if n % 3 else "error")
        valid.append(record)
        lines += [json.dumps(record, ensure_ascii=False).encode(), bad, b"", b"   "]
    data = b"\n".join(lines) + b"\n"
    malformed = len(MALFORMED)
    if truncated_tail:  # a power cut in the middle of the last append
        data += b'{"job_name": "tick", "start_time": "2026-01-02T03:05:00.000+00:00", "status": "succ'
        malformed += 1
    path = log_dir / "batch_20260102.jsonl"
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return valid[::-1], malformed


def test_history_reader_skips_and_counts_malformed_lines(tmp_path: Path):
    valid, malformed = _write_history(tmp_path / LOG_REL, truncated_tail=True)
    note(faults_injected=malformed)
    reader = HistoryReader(tmp_path / LOG_REL)
    got = list(reader.records(HistoryQuery(limit=None)))
    assert got == valid
    assert reader.skipped == malformed


def test_cli_history_skips_and_counts_malformed_lines(tmp_path: Path):
    write_config(tmp_path, GOOD_JOBS, settings=fast())
    valid, malformed = _write_history(tmp_path / LOG_REL, truncated_tail=True)
    done = cli(tmp_path, "history", "--json", "--limit", "1000", timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == valid
    assert f"({malformed} malformed history line(s) skipped)" in done.stderr
    done = cli(tmp_path, "history", "--limit", "1000", timeout=CLI_TIMEOUT)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert len(done.stdout.strip().splitlines()) == len(valid) + 1
    assert f"({malformed} malformed history line(s) skipped)" in done.stderr


def test_history_with_a_job_filter_counts_malformed_lines(tmp_path: Path):
    _valid, malformed = _write_history(tmp_path / LOG_REL, truncated_tail=False)
    reader = HistoryReader(tmp_path / LOG_REL)
    list(reader.records(HistoryQuery(job="tick", limit=None)))
    assert reader.skipped == malformed


def test_append_after_a_truncated_last_line_keeps_the_new_record(tmp_path: Path):
    from insect_console.history import append_record

    log_dir = tmp_path / LOG_REL
    _write_history(log_dir, truncated_tail=True)
    note(faults_injected=1)
    append_record(log_dir, _record("tick", 59, run_id="after-power-cut"))
    got = HistoryReader(log_dir).latest(HistoryQuery(limit=1))
    assert got and got[0]["run_id"] == "after-power-cut"
