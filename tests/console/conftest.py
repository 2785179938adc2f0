"""Fixtures for the console tests: real engines on tmp configs, fixed stats, fixed clocks.

Configs are written by the shared builders of tests/helpers.py (`job`, `write_config`), with
this suite's settings (`console_settings`). Every engine made here is stopped at teardown, so
no thread or job process outlives a test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from helpers import Deadline, fast_settings, job, write_config
from insect_console import history, records
from insect_console.clock import ManualClock
from insect_console.engine import Engine
from insect_console.sysstats import SystemStats

FIXED_STATS = SystemStats(cpu_percent=12.0, mem_percent=41.0, disk_free=int(21.4 * 1024**3), temperature=48.0)
FIXED_NOW = dt.datetime(2026, 3, 14, 10, 0, 0)  # a Saturday


def fixed_stats() -> SystemStats:
    return FIXED_STATS


def console_settings(**more: Any) -> dict[str, Any]:
    """This suite's settings: history in ./logs, short graces."""
    return fast_settings(log_dir="logs", **more)


@pytest.fixture
def make_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make_engine(jobs, clock=None, state=None, start=True, **settings) -> a started Engine in tmp_path."""
    monkeypatch.chdir(tmp_path)
    engines: list[Engine] = []

    def make(jobs: list[dict[str, Any]], *, clock=None, state: dict[str, Any] | None = None, start: bool = True, name: str = "config.toml", **settings: Any) -> Engine:
        config = write_config(tmp_path, jobs, console_settings(**settings), rel=name)
        if state is not None:
            (tmp_path / f"{config.stem}.state.json").write_text(json.dumps({"version": 1, "jobs": state, "running": {}}))
        engine = Engine(config, base_dir=tmp_path, clock=clock)
        engines.append(engine)
        if start:
            engine.start()
        return engine

    yield make
    for engine in engines:
        if engine._scheduler_lock is not None or engine.running:
            engine.stop(0)


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (for assertions and debugging)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None, record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens, simplify=True))
    return console.export_text(styles=False)


def run(coro: Awaitable[Any]) -> Any:
    """Run a test coroutine (no pytest-asyncio here)."""
    return asyncio.run(coro)


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Let the app run (pilot.pause) until `predicate()` is truthy; fail after `timeout` seconds.
    The async counterpart of helpers.wait_for, which blocks."""
    deadline = Deadline(timeout, what)
    while not (value := deadline.check(predicate)):
        await pilot.pause(0.05)
    return value


async def settle(pilot, timeout: float = 10.0) -> str:
    """Wait until the app's workers are done and two looks at the screen agree; return its text.

    A snapshot is taken only then, so a late repaint on a slow machine cannot slip into it.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)
        text = screen_text(pilot.app)
        if text == last:
            return text
        if time.monotonic() > deadline:
            raise AssertionError("the screen never settled:\n" + text)
        last = text


# -- fixed data for snapshots -----------------------------------------------------------

SNAPSHOT_JOBS = [
    job("quick", "echo tick", "interval", "5s", shell=True),
    job("chatty", "echo chatty", "interval", "30s"),
    job("always-fails", "false", "interval", "10s"),
    job("times-out", "sleep 30", "interval", "20s", timeout=3),
    job("nightly-report", "echo report", "daily", "02:00"),
    job("weekly-cleanup", "echo cleanup", "weekly", "sunday"),
    job("backup", "echo backup", "daily", "03:00", enabled=False),
]

SNAPSHOT_STATE = {
    "quick": {"last_run": "2026-03-14T09:59:57", "last_status": "success", "error_count": 0},
    "chatty": {"last_run": "2026-03-14T09:59:40", "last_status": "success", "error_count": 0, "last_duration_s": 12.3, "last_output_file": "logs/output/20260314/chatty-095940-abc123.log"},
    "always-fails": {"last_run": "2026-03-14T09:59:50", "last_status": "error", "error_count": 3},
    "times-out": {"last_run": "2026-03-14T09:59:45", "last_status": "timeout", "error_count": 1},
    "nightly-report": {"last_run": "2026-03-14T02:00:00", "last_status": "success", "error_count": 0},
    "weekly-cleanup": {"last_run": "2026-03-08T00:00:00", "last_status": "interrupted", "error_count": 0},
}


def record(name: str, start: dt.datetime, status: str = "success", duration: float = 0.5, **extra: Any) -> dict[str, Any]:
    """A finished run's record, made by the engine's own constructor."""
    extra.setdefault("exit_code", 0 if status == "success" else 1)
    extra.setdefault("run_id", f"{start:%Y%m%dT%H%M%S}-{name}")
    return records.finished(name, start=start, end=start + dt.timedelta(seconds=duration), status=status, duration_s=duration, **extra)


def write_snapshot_history(log_dir: Path) -> None:
    """A fixed history over three days, plus the chatty run's output file."""
    out = log_dir / "output" / "20260314" / "chatty-095940-abc123.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"chatty line {i}/12: sensor={i * 37 % 100}\n" for i in range(1, 13)))
    records = []
    base = dt.datetime(2026, 3, 11, 20, 0, 0)
    for i in range(30):
        start = base + dt.timedelta(hours=i * 2)
        records.append(record("quick", start, duration=0.1 + (i % 5) * 0.05, run_id=f"q{i:03d}"))
        status = "success" if i % 7 else "error"
        records.append(record("chatty", start + dt.timedelta(minutes=1), status, duration=18 + (i % 4), run_id=f"c{i:03d}", error=None if status == "success" else "exit status 1: sensor offline"))
        if i % 3 == 0:
            records.append(record("times-out", start + dt.timedelta(minutes=2), "timeout", duration=3.0, exit_code=None, error="timed out after 3 s", run_id=f"t{i:03d}"))
    records.append(
        record(
            "chatty",
            dt.datetime(2026, 3, 14, 9, 59, 40),
            duration=12.3,
            run_id="20260314T095940-abc123",
            output="chatty line 12/12\n",
            output_file=str(out),
        )
    )
    records.append(record("always-fails", dt.datetime(2026, 3, 14, 9, 59, 50), "error", 0.02, error="exit status 1: camera not found", run_id="af1"))
    records.sort(key=lambda r: r["start_time"])
    for rec in records:
        history.append_record(log_dir, rec)


@pytest.fixture
def snapshot_engine(make_engine, tmp_path: Path) -> Engine:
    """The snapshot jobs on a ManualClock at FIXED_NOW, with fixed state and history."""
    state = json.loads(json.dumps(SNAPSHOT_STATE))
    state["chatty"]["last_output_file"] = str(tmp_path / state["chatty"]["last_output_file"])
    write_snapshot_history(tmp_path / "logs")
    return make_engine(SNAPSHOT_JOBS, clock=ManualClock(FIXED_NOW), state=state)
