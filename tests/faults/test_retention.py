"""Bounded logs: pruning at start and daily, never today's history file nor a running job's output."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

from insect_console import records
from insect_console.engine import Engine

from .kit import WAIT, LOG_REL, Daemon, cli_process, fast, job, note, read_state, wait_for, write_config
from .test_clock import StepClock


def _history(log_dir: Path, day: dt.date) -> Path:
    path = log_dir / f"batch_{day:%Y%m%d}.jsonl"
    start = dt.datetime.combine(day, dt.time(12))
    path.write_text(json.dumps(records.finished("x", start=start, end=start, status="success")) + "\n")
    return path


def _output(log_dir: Path, day: dt.date, name: str, size: int, age_s: float = 0) -> Path:
    path = log_dir / "output" / f"{day:%Y%m%d}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"o" * size)
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))
    return path


def test_prune_at_daemon_start(tmp_path: Path):
    today = dt.date.today()
    log_dir = tmp_path / LOG_REL
    log_dir.mkdir(parents=True)
    keep = [_history(log_dir, today - dt.timedelta(days=d)) for d in (0, 1, 29)]
    gone = [_history(log_dir, today - dt.timedelta(days=d)) for d in (30, 400)]
    keep += [_output(log_dir, today - dt.timedelta(days=d), "job-000000-aaaaaa.log", 100) for d in (0, 6)]
    gone += [_output(log_dir, today - dt.timedelta(days=d), "job-000000-bbbbbb.log", 100) for d in (7, 100)]
    strangers = [log_dir / "notes.txt", log_dir / "batch_2024.jsonl.bak"]
    for path in strangers:
        path.write_text("not ours")
    write_config(tmp_path, [job("idle", "true", enabled=False)], settings=fast(history_keep_days=30, output_keep_days=7))
    daemon = Daemon(tmp_path).started()
    try:
        daemon.wait_log("pruned")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    note(faults_injected=1)
    assert [p for p in keep + strangers if not p.exists()] == []
    assert [p for p in gone if p.exists()] == []
    assert not (log_dir / "output" / f"{today - dt.timedelta(days=7):%Y%m%d}").exists()
    assert any("pruned 2 history file(s) and 2 run output file(s)" in line for line in daemon.lines), daemon.log_tail()


def test_size_cap_keeps_a_running_jobs_output(tmp_path: Path):
    """Over output_max_mb the oldest outputs go first, but never the output of a run in progress."""
    config = write_config(tmp_path, [job("big", "head -c 2M /dev/zero; sleep 600", shell=True)], settings=fast(output_max_mb=1))
    log_dir = tmp_path / LOG_REL
    today = dt.date.today()
    engine = Engine(config, base_dir=tmp_path)
    engine.start()
    try:
        engine.run_now("big")

        def output() -> Path | None:
            active = engine.active_runs().get("big")
            path = Path(active.output_file) if active and active.output_file else None
            return path if path and path.exists() and path.stat().st_size == 2 * 2**20 else None

        out = wait_for(output, timeout=WAIT, what="2 MiB of output")
        old = [_output(log_dir, today, f"old-{i}.log", 600_000, age_s=3600 - i) for i in range(3)]
        engine.prune_logs()
        assert out.exists() and out.stat().st_size == 2 * 2**20
        kept = [p for p in old if p.exists()]
        assert kept == old[len(old) - len(kept):], "the oldest outputs go first"
        assert sum(p.stat().st_size for p in kept) <= 2**20 and len(kept) < len(old)
        engine.kill("big")
    finally:
        engine.stop(grace=5)
    note(faults_injected=1, runs_recorded=1)


def test_prune_keeps_the_output_of_a_run_in_another_process(tmp_path: Path):
    """A `run-job --local` in progress is protected through the state file."""
    config = write_config(tmp_path, [job("big", "head -c 2M /dev/zero; sleep 3", shell=True)], settings=fast(output_max_mb=1))
    with cli_process(tmp_path, "run-job", "--local", "big", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as runner:
        def running_output():
            for entry in read_state(config)["running"].values():
                path = Path(entry.get("output_file") or "/nonexistent")
                if path.exists() and path.stat().st_size == 2 * 2**20:
                    return path
            return None

        out = wait_for(running_output, timeout=WAIT, what="a run in progress in another process")
        Engine(config, base_dir=tmp_path).prune_logs()
        assert out.exists()
        assert runner.wait(60) == 0
    note(faults_injected=1, runs_recorded=1)


def test_prune_runs_daily(tmp_path: Path):
    """At midnight (on the engine's clock) yesterday's outputs beyond the keep window go."""
    day = dt.date(2025, 3, 8)
    config = write_config(tmp_path, [job("idle", "true", enabled=False)], settings=fast(history_keep_days=2, output_keep_days=1))
    log_dir = tmp_path / LOG_REL
    log_dir.mkdir(parents=True)
    older, yesterday, today = (_history(log_dir, day - dt.timedelta(days=d)) for d in (2, 1, 0))
    out_today = _output(log_dir, day, "j-000000-cccccc.log", 10)
    clock = StepClock(dt.datetime.combine(day, dt.time(23, 59, 50)))
    engine = Engine(config, base_dir=tmp_path, clock=clock)
    engine.start()
    try:
        wait_for(lambda: not older.exists(), timeout=WAIT, what="the prune at start")
        assert yesterday.exists() and today.exists() and out_today.exists()
        for _ in range(40):  # 40 s: past midnight, and the loop wakes at least every 30 s
            clock.advance(1)
            time.sleep(0.01)
        wait_for(lambda: not yesterday.exists() and not out_today.exists(), timeout=WAIT, what="the daily prune")
        assert today.exists()
    finally:
        engine.stop(grace=0)
    note(faults_injected=1)
