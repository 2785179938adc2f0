"""Pilot tests of every console flow, on a real Engine with real subprocess jobs (80x24)."""

from __future__ import annotations

import datetime as dt
import tomllib

from textual.widgets import DataTable, Input, Select

from insect_console import history
from insect_console.app import create_app
from insect_console.engine import Engine
from insect_console.history import HistoryReader
from insect_console.screens import ConfirmScreen, HelpScreen, HistoryScreen, JobFormScreen, OutputScreen, QuitScreen, RunDetailScreen, WaitingScreen
from insect_console.widgets.bars import StatusLine
from insect_console.widgets.output_view import FollowLog

from helpers import job
from .conftest import fixed_stats, record, run, screen_text, wait_until

SIZE = (80, 24)


def console(engine, **kw):
    return create_app(engine, stats_provider=fixed_stats, **kw)


def table_of(app) -> DataTable:
    return app.screen.query_one(DataTable)


def cell(app, row: str, column: str) -> str:
    value = table_of(app).get_cell(row, column)
    return getattr(value, "plain", str(value))


def config_jobs(engine) -> dict[str, dict]:
    data = tomllib.loads(engine.store.path.read_text())
    return {j["name"]: j for j in data.get("jobs", [])}


async def select_row(pilot, name: str) -> None:
    table = table_of(pilot.app)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()


def test_run_now_records_a_run(make_engine):
    engine = make_engine([job("idle", "true", "daily", "02:00"), job("hello", "echo hello from the job", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await select_row(pilot, "hello")
            assert cell(app, "hello", "status") == "· never"
            await pilot.press("r")
            await wait_until(pilot, lambda: cell(app, "hello", "status") == "✓ success", what="the success in the table")
            assert table_of(app).cursor_row == 1  # the cursor stayed on the row
            records = HistoryReader(engine.log_dir).latest()
            assert [r["job_name"] for r in records] == ["hello"]
            assert records[0]["trigger"] == "manual" and "hello from the job" in records[0]["output"]
            assert cell(app, "hello", "last") != "—"

    run(go())


def test_table_counts_down_in_place(make_engine):
    engine = make_engine([job("a", "true", "daily", "02:00"), job("tick", "true", "interval", "5m")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            table = table_of(app)
            await select_row(pilot, "tick")
            before = cell(app, "tick", "next")
            await wait_until(pilot, lambda: cell(app, "tick", "next") != before, timeout=3, what="the countdown to move")
            assert table.cursor_row == 1 and table.row_count == 2
            assert cell(app, "tick", "schedule") == "every 5m"

    run(go())


def test_add_job_through_the_form(make_engine):
    engine = make_engine([job("existing", "true", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            assert isinstance(app.screen, JobFormScreen)
            await pilot.press(*"fresh")
            await pilot.press("tab", *"echo x")
            await pilot.press("tab", "tab", "tab", *"15m")  # shell switch, schedule select, time
            await pilot.pause()
            assert "every 15m" in str(app.screen.query_one("#err-schedule_time").render())
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, JobFormScreen), what="the form to close")
            saved = config_jobs(engine)["fresh"]
            assert saved["command"] == "echo x" and saved["schedule_type"] == "interval" and saved["schedule_time"] == "15m"
            assert engine.scheduler.next_run("fresh") is not None  # rescheduled at once
            await wait_until(pilot, lambda: "fresh" in [r.key.value for r in table_of(app).rows.values()], what="the new row")
            assert table_of(app).cursor_row == table_of(app).get_row_index("fresh")

    run(go())


def test_bad_input_shows_the_error_and_saves_nothing(make_engine):
    engine = make_engine([job("existing", "true", "daily", "02:00")])
    before = engine.store.path.read_bytes()
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            form = app.screen
            await pilot.press(*"bad name")  # a space is not allowed: shown as you type
            await pilot.pause()
            error = form.query_one("#err-name")
            assert error.has_class("-error") and "not allowed" in str(error.render())
            assert error.region.y > 0  # displayed under the field
            form.query_one("#name", Input).value = "existing"
            await pilot.pause()
            assert "taken" in str(form.query_one("#err-name").render())
            form.query_one("#name", Input).value = "good_name"
            form.query_one("#command", Input).value = "cat data.txt | wc -l"  # shell syntax without shell
            form.query_one("#schedule_type", Select).value = "daily"
            form.query_one("#schedule_time", Input).value = "25:00"
            form.query_one("#timeout", Input).value = "soon"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, JobFormScreen)
            expected = ("uses shell syntax '|'; switch Shell on", "out of range", "not a duration")
            await wait_until(pilot, lambda: all(x in screen_text(app) for x in expected), what="the errors under the fields")
            assert engine.store.path.read_bytes() == before
            await pilot.press("escape")
            assert not isinstance(app.screen, JobFormScreen)
            assert engine.store.path.read_bytes() == before

    run(go())


def test_edit_job(make_engine):
    engine = make_engine([job("first", "true", "daily", "02:00"), job("second", "echo two", "interval", "1h", timeout=60, cwd=".")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await select_row(pilot, "second")
            await pilot.press("e")
            form = app.screen
            assert form.query_one("#name", Input).value == "second"
            assert form.query_one("#timeout", Input).value == "60"
            form.query_one("#schedule_time", Input).value = "45m"
            form.query_one("#command", Input).value = "echo changed"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, JobFormScreen), what="the form to close")
            saved = config_jobs(engine)["second"]
            assert saved["schedule_time"] == "45m" and saved["command"] == "echo changed"
            assert saved["timeout"] == 60 and saved["cwd"] == "."  # fields the form does not show are kept
            await wait_until(pilot, lambda: cell(app, "second", "schedule") == "every 45m", what="the new schedule in the table")

    run(go())


def test_edit_a_running_job(make_engine, tmp_path):
    engine = make_engine([job("slow", "sleep 1; echo v1", "daily", "02:00", shell=True)])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: "slow" in engine.active_runs(), what="the run")
            await pilot.press("e")
            assert "running now" in screen_text(app)
            app.screen.query_one("#command", Input).value = "echo v2"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: config_jobs(engine)["slow"]["command"] == "echo v2", what="the saved command")
            await wait_until(pilot, lambda: engine.state.job("slow").get("last_status") == "success", what="the first run to end")
            assert "v1" in HistoryReader(engine.log_dir).latest()[0]["output"]
            await wait_until(pilot, lambda: "slow" not in engine.active_runs(), what="the worker to let go of the run")
            engine.run_now("slow")
            await wait_until(pilot, lambda: len(HistoryReader(engine.log_dir).latest()) == 2, what="the second run")
            assert "v2" in HistoryReader(engine.log_dir).latest()[0]["output"]

    run(go())


def test_enable_disable_with_space(make_engine):
    engine = make_engine([job("toggled", "true", "interval", "1h")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("space")
            await wait_until(pilot, lambda: not engine.config.job("toggled").enabled, what="disabled")
            assert config_jobs(engine)["toggled"]["enabled"] is False
            assert engine.scheduler.next_run("toggled") is None
            await wait_until(pilot, lambda: cell(app, "toggled", "next") == "off" and cell(app, "toggled", "on") == "○", what="off in the table")
            await pilot.press("space")
            await wait_until(pilot, lambda: engine.config.job("toggled").enabled, what="enabled")
            await wait_until(pilot, lambda: cell(app, "toggled", "on") == "●", what="on in the table")

    run(go())


def test_delete_asks_first(make_engine):
    engine = make_engine([job("keep", "true", "daily", "02:00"), job("doomed", "true", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await select_row(pilot, "doomed")
            await pilot.press("d")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert not isinstance(app.screen, ConfirmScreen)
            assert "doomed" in config_jobs(engine)
            await pilot.press("d")
            await pilot.press("y")
            await wait_until(pilot, lambda: "doomed" not in engine.config.names(), what="the job to go")
            assert list(config_jobs(engine)) == ["keep"]
            await wait_until(pilot, lambda: table_of(app).row_count == 1, what="the row to go")
            assert table_of(app).cursor_row == 0

    run(go())


def test_kill_asks_and_ends_the_run(make_engine):
    engine = make_engine([job("sleeper", "sleep 30", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: cell(app, "sleeper", "status").startswith("▶"), what="the run in the table")
            await pilot.press("k")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_until(pilot, lambda: engine.state.job("sleeper").get("last_status") == "error", what="the killed run")
            assert HistoryReader(engine.log_dir).latest()[0]["error"] == "killed on request"
            await wait_until(pilot, lambda: cell(app, "sleeper", "status") == "✗ error", what="error in the table")

    run(go())


def test_filter_jobs(make_engine):
    engine = make_engine([job("camera_a", "true", "daily", "02:00"), job("camera_b", "true", "daily", "02:00"), job("backup", "true", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("slash", *"cam")
            await pilot.pause()
            assert [r.key.value for r in table_of(app).rows.values()] == ["camera_a", "camera_b"]
            await pilot.press("enter")  # keeps the filter, back to the table
            assert app.focused is table_of(app)
            await pilot.press("down", "r")  # r runs the job, it is not typed into the filter
            await wait_until(pilot, lambda: engine.state.job("camera_b").get("last_status") == "success", what="camera_b to run")
            await pilot.press("escape")
            assert table_of(app).row_count == 3

    run(go())


def test_live_output_follows_and_pauses(make_engine):
    engine = make_engine([job("talker", "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo line $i; sleep 0.05; done", "daily", "02:00", shell=True)])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: "talker" in engine.active_runs(), what="the run")
            await pilot.press("l")
            assert isinstance(app.screen, OutputScreen)
            log = app.screen.query_one(FollowLog)
            await wait_until(pilot, lambda: "line 3" in log.lines, what="the first lines")
            await wait_until(pilot, lambda: "running" in screen_text(app), what="running in the info line")
            await wait_until(pilot, lambda: log.line_count > 25, what="more lines")  # taller than the view
            await pilot.press("home")
            assert not log.following
            await wait_until(pilot, lambda: log.unseen > 0, what="new lines while paused")
            await wait_until(pilot, lambda: "new lines below" in screen_text(app), what="the paused line")
            await wait_until(pilot, lambda: any(line.startswith("── ✓ success") for line in log.lines), what="the end of the run")
            await pilot.press("end")
            assert log.following and log.unseen == 0
            assert log.lines[-2] == "line 40"
            await pilot.press("escape")
            assert not isinstance(app.screen, OutputScreen)

    run(go())


def test_output_of_a_job_that_is_not_running_shows_its_last_run(make_engine):
    engine = make_engine([job("done", "echo first; echo second", "daily", "02:00", shell=True)])
    engine.execute(engine.config.job("done"), "manual")
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("enter")
            assert isinstance(app.screen, OutputScreen)
            log = app.screen.query_one(FollowLog)
            await wait_until(pilot, lambda: log.lines[:2] == ["first", "second"], what="the last run's output")
            await wait_until(pilot, lambda: "last run" in screen_text(app) and "✓ success" in screen_text(app), what="the last run's info")

    run(go())


def test_output_of_a_run_started_elsewhere_is_read_from_its_file(make_engine):
    """A `run-job` from a shell runs in another engine: the console follows its output file."""
    import threading

    engine = make_engine([job("outside", "for i in 1 2 3 4 5 6 7 8; do echo out $i; sleep 0.2; done", "daily", "02:00", shell=True)])
    other = Engine(engine.store.path, base_dir=engine.store.base_dir)  # like the CLI: not a scheduler
    runner = threading.Thread(target=other.execute, args=(other.config.job("outside"), "manual"))
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            runner.start()
            await wait_until(pilot, lambda: engine.state.read()["running"], what="the outside run")
            await pilot.press("l")
            log = app.screen.query_one(FollowLog)
            await wait_until(pilot, lambda: "out 8" in log.lines, what="the file to be followed to its end")
            assert "out 1" in log.lines or log.lines[0].startswith("out")
            await wait_until(pilot, lambda: "in another process" in screen_text(app) or not engine.state.read()["running"], what="the info line")

    try:
        run(go())
    finally:
        runner.join()


def test_history_filters_and_opens_a_run(make_engine, tmp_path):
    engine = make_engine([job("alpha", "true", "daily", "02:00"), job("beta", "true", "daily", "02:00")])
    out = tmp_path / "beta-run.log"
    out.write_text("beta said this\n")
    base = dt.datetime(2026, 3, 10, 12, 0)
    for day in range(3):
        for i in range(10):
            start = base + dt.timedelta(days=day, minutes=i)
            history.append_record(engine.log_dir, record("alpha", start, "success" if i % 3 else "error", run_id=f"a{day}{i}"))
            history.append_record(engine.log_dir, record("beta", start + dt.timedelta(seconds=30), "success", output_file=str(out), run_id=f"b{day}{i}"))
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("h")
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            table = screen.query_one("#runs-table", DataTable)
            await wait_until(pilot, lambda: table.row_count == 60, what="all rows")
            assert "alpha" in str(screen.query_one("#trends").render())
            first = table.get_row_at(0)
            assert str(first[1]) == "beta" and first[0] == "03-12 12:09:30"  # newest first (cells of job text are Text: never markup)
            screen.query_one("#f-job", Select).value = "alpha"
            await wait_until(pilot, lambda: table.row_count == 30, what="alpha only")
            assert {str(table.get_row_at(i)[1]) for i in range(30)} == {"alpha"}
            screen.query_one("#f-status", Select).value = "error"
            await wait_until(pilot, lambda: table.row_count == 12, what="alpha errors")
            await pilot.press("slash")
            await pilot.press("tab", "tab", *"2026-03-11", "enter")
            await wait_until(pilot, lambda: table.row_count == 4, what="one day of alpha errors")
            assert app.focused is table
            screen.query_one("#f-day", Input).value = "2026-99-99"
            await pilot.pause()
            await wait_until(pilot, lambda: "use YYYY-MM-DD" in screen_text(app), what="the day error")
            screen.query_one("#f-day", Input).value = ""
            screen.query_one("#f-job", Select).value = "beta"
            screen.query_one("#f-status", Select).value = ""
            await wait_until(pilot, lambda: table.row_count == 30, what="beta rows")
            table.focus()
            await pilot.press("enter")
            assert isinstance(app.screen, RunDetailScreen)
            log = app.screen.query_one(FollowLog)
            await wait_until(pilot, lambda: "beta said this" in log.lines, what="the run's output file")
            await wait_until(pilot, lambda: "b29" in screen_text(app), what="the run id, from the full record")
            await pilot.press("escape")
            assert isinstance(app.screen, HistoryScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HistoryScreen)

    run(go())


def test_quit_asks_when_a_run_is_in_progress_and_stops_it(make_engine):
    engine = make_engine([job("long", "sleep 30", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: cell(app, "long", "status").startswith("▶"), what="the run")
            await pilot.press("q")
            assert isinstance(app.screen, QuitScreen)
            assert "long" in screen_text(app)
            await pilot.press("escape")  # cancel
            assert not isinstance(app.screen, QuitScreen)
            assert app.is_running and "long" in engine.active_runs()
            await pilot.press("q", "s")
            await wait_until(pilot, lambda: not app.is_running, what="the app to exit")
        assert app.return_value == "stop"
        engine.stop(0)  # what run_console does for "stop"
        assert HistoryReader(engine.log_dir).latest()[0]["status"] == "interrupted"

    run(go())


def test_quit_can_wait_for_runs(make_engine):
    engine = make_engine([job("short", "sleep 1.5", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: "short" in engine.active_runs(), what="the run")
            await pilot.press("q", "w")
            assert isinstance(app.screen, WaitingScreen)
            assert not engine.running  # no new runs start
            await wait_until(pilot, lambda: not app.is_running, timeout=10, what="the app to exit after the run")
        assert app.return_value is None
        assert HistoryReader(engine.log_dir).latest()[0]["status"] == "success"

    run(go())


def test_quit_without_runs_just_quits(make_engine):
    engine = make_engine([job("idle", "true", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, what="the app to exit")

    run(go())


def test_help_palette_and_notifications(make_engine):
    engine = make_engine([job("flaky", "exit 3", "daily", "02:00", shell=True)], failure_threshold=2)
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            text = screen_text(app)
            assert "Run the selected job now" in text and "Jobs" in text
            await pilot.press("escape")
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Run the selected job now (r)" in titles and "Delete the job (asks first) (d)" in titles and "Quit" in titles
            assert not any("Focus Next" in t for t in titles)
            await pilot.press("ctrl+p")
            await pilot.press(*"run fl")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_until(pilot, lambda: engine.state.job("flaky").get("error_count") == 1, what="the palette's run")
            engine.run_now("flaky")
            await wait_until(pilot, lambda: app.last_notice is not None, what="the failing notice")
            assert "flaky failing" in app.last_notice[1]
            assert any("failed 2 times in a row" in n.message for n in app._notifications)
            await pilot.pause(0.2)
            assert "flaky failing" in str(app.screen.query_one(StatusLine).render())

    run(go())


def test_config_file_broken_by_hand_is_reported(make_engine):
    engine = make_engine([job("ok", "true", "daily", "02:00")])
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            engine.store.path.write_text("this is [not toml")
            engine.request_reload()
            await wait_until(pilot, lambda: app.last_notice is not None, what="the reload error")
            assert "config not reloaded" in app.last_notice[1]
            assert table_of(app).row_count == 1  # the old jobs are kept

    run(go())
