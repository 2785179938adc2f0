"""The console under load: a 200,000-line burst, and a due job while a year of history loads."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

from textual.widgets import DataTable

from insect_console import records
from insect_console.app import create_app
from insect_console.events import RunStarted
from insect_console.history import HistoryReader, history_file
from insect_console.screens import HistoryScreen, OutputScreen
from insect_console.screens.history import MAX_ROWS, PAGE
from insect_console.runoutput import MAX_LINES
from insect_console.widgets.output_view import FollowLog

from helpers import PY, job
from .conftest import fixed_stats, run, wait_until

SIZE = (80, 24)


class LagMeter:
    """Measures how late the event loop wakes up for a 20 ms sleep (the console's responsiveness)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _measure(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.02)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.02)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._measure())

    def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()


def test_a_200000_line_burst_leaves_the_console_responsive(make_engine, tmp_path):
    script = tmp_path / "burst.py"
    script.write_text("import sys\nsys.stdout.write(''.join(f'burst line {i}\\n' for i in range(200_000)))\n")
    engine = make_engine([job("burst", f"{PY} {script}", "daily", "02:00")])
    app = create_app(engine, stats_provider=fixed_stats)
    messages: list[str] = []

    async def go():
        async with app.run_test(size=SIZE, message_hook=lambda m: messages.append(type(m).__name__)) as pilot:
            await pilot.press("l")
            assert isinstance(app.screen, OutputScreen)
            log = app.screen.query_one(FollowLog)
            lag = LagMeter()
            lag.start()
            started = time.monotonic()
            await pilot.press("r")
            await wait_until(pilot, lambda: log.lines and log.lines[-1].startswith("── ✓ success"), timeout=60, what="the burst to end")
            took = time.monotonic() - started
            await pilot.press("home")
            await wait_until(pilot, lambda: not log.following, what="following to pause")
            await pilot.press("end")
            await wait_until(pilot, lambda: log.following, what="following to resume")
            lag.stop()
            assert log.line_count <= MAX_LINES
            assert log.lines[-2] == "burst line 199999"
            assert "not kept here" in log.lines[0] or log.lines[0].startswith("burst line")
            assert lag.worst < 0.5, f"the event loop stalled for {lag.worst:.2f} s"
            assert took < 30
        # the output was coalesced: far fewer messages than output batches, let alone lines
        assert messages.count("OutputAvailable") < 500
        assert HistoryReader(engine.log_dir).latest()[0]["status"] == "success"

    run(go())


def _write_big_history(log_dir, days: int, per_day: int) -> int:
    """`days` daily files of `per_day` records each, ending yesterday; returns the count.

    One record made by the engine's own constructor is the %-template of every line (a
    constructor call per record would make this slow to write, not the console to read)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    at = dt.datetime(2000, 1, 1)
    shape = records.finished("job%(job)d", start=at, end=at, status="%(status)s", output="some output of the run " * 4,
                             exit_code=0, duration_s=1234.5, run_id="%(day)s-%(i)d")
    template = json.dumps(shape).replace(json.dumps(records.iso(at)), '"%(when)s"').replace("1234.5", "%(duration).1f")
    today = dt.date.today()
    for back in range(days, 0, -1):
        day = today - dt.timedelta(days=back)
        start = dt.datetime.combine(day, dt.time(0, 0))
        step = 86400 // per_day
        lines = [
            template
            % {
                "job": i % 5,
                "when": records.iso(start + dt.timedelta(seconds=i * step)),
                "status": "success" if i % 13 else "error",
                "duration": 0.5 + (i % 7) / 10,
                "day": f"{day:%Y%m%d}",
                "i": i,
            }
            for i in range(per_day)
        ]
        history_file(log_dir, day).write_text("\n".join(lines) + "\n")
    return days * per_day


def test_a_due_job_starts_on_time_while_a_year_of_history_loads(make_engine, tmp_path):
    total = _write_big_history(tmp_path / "logs", days=365, per_day=600)  # 219,000 records, ~70 MB
    engine = make_engine([job("job0", "true", "daily", "02:00"), job("due", "true", "interval", "2s")])
    due_at = engine.scheduler.next_run("due")
    starts: list[dt.datetime] = []
    engine.subscribe(lambda e: isinstance(e, RunStarted) and e.job_name == "due" and starts.append(dt.datetime.now()))
    app = create_app(engine, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            # open the history just before the job is due, and keep it busy paging through it
            while dt.datetime.now() < due_at - dt.timedelta(seconds=0.8):
                await pilot.pause(0.05)
            await pilot.press("h")
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            table = screen.query_one("#runs-table", DataTable)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                await pilot.press("end")  # the cursor at the end loads the next page
                await pilot.pause(0.05)
            await wait_until(pilot, lambda: starts, what="the due run")
            for k, started in enumerate(starts):  # every run while the history was busy
                late = (started - (due_at + dt.timedelta(seconds=2 * k))).total_seconds()
                assert -0.05 < late < 0.5, f"run {k} started {late:.3f} s after its due time"
            # lazily loaded: pages only, never the whole history
            assert PAGE <= table.row_count <= MAX_ROWS < total
            assert len(screen._records) == table.row_count
            assert screen._cursor is not None and len(screen._cursor.files_read) < 60
            trends = str(screen.query_one("#trends").render())
            assert "job0" in trends and "✓" in trends

    run(go())
