"""The console with the new schedule types: the form's window and jitter fields, its next 5 due
times as you type (through `engine.preview` on a worker), one-line errors from the engine's
validator, and the job table's whole schedule in words for the selected job. Real app, real engine."""

from __future__ import annotations

import datetime as dt
import tomllib

from cronsim import CronSim

from helpers import job
from insect_console.clock import ManualClock
from insect_console.screens.form import JobFormScreen

from .conftest import FIXED_NOW, run, screen_text, wait_until
from .test_flows import SIZE, console

PLACE = {"latitude": 52.5, "longitude": 13.4}  # timezone: the system's, as the naive ManualClock and CronSim here


def hint(app) -> str:
    return str(app.screen.query_one("#err-schedule_time").render())


def test_the_form_previews_the_next_five_due_times_of_a_cron_job_in_a_window(make_engine):
    engine = make_engine([job("existing", "true", "daily", "02:00")], clock=ManualClock(FIXED_NOW), **PLACE)
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a", *"nightcron", "tab", *"true", "tab", "tab")
            app.screen.query_one("#schedule_type").value = "cron"
            await pilot.press("tab", *"*/20 * * * *", "tab", *"23:00..01:00")
            expected = []  # cronsim on its own, filtered to the window by hand
            for t in CronSim("*/20 * * * *", FIXED_NOW):
                if t.time() >= dt.time(23, 0) or t.time() < dt.time(1, 0):
                    expected.append(t)
                if len(expected) == 5:
                    break
            await wait_until(pilot, lambda: "next " in hint(app), what="the preview")
            text = hint(app)
            assert "every 20th minute" in text and "23:00 to 01:00" in text
            assert f"{expected[0]:%a %H:%M:%S}" in text and all(f"{t:%H:%M:%S}" in text for t in expected), (text, expected)
            assert "Save (ctrl+s)" in screen_text(app)                         # the form with its preview still fits 80x24
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, JobFormScreen), what="the form to close")
            saved = {j["name"]: j for j in tomllib.loads(engine.store.path.read_text())["jobs"]}["nightcron"]
            assert (saved["schedule_type"], saved["schedule_time"], saved["window"]) == ("cron", "*/20 * * * *", "23:00..01:00")
            assert engine.scheduler.next_run("nightcron") == expected[0]

    run(go())


def test_the_form_shows_window_and_jitter_errors_and_saves_nothing(make_engine):
    engine = make_engine([job("existing", "true", "daily", "02:00")], clock=ManualClock(FIXED_NOW), **PLACE)
    before = engine.store.path.read_bytes()
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a", *"x", "tab", *"true", "tab", "tab", "tab", *"10m", "tab", *"21:00..21:00")
            await pilot.pause()
            assert "starts where it ends" in str(app.screen.query_one("#err-window").render())
            await pilot.press(*["backspace"] * 5, *"05:00", "tab", *"13h")
            await pilot.pause()
            assert "jitter" in str(app.screen.query_one("#err-window").render()) and "too long" in str(app.screen.query_one("#err-window").render())
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, JobFormScreen)
            assert engine.store.path.read_bytes() == before

    run(go())


def test_a_sun_job_needs_the_stations_place_in_the_form(make_engine):
    engine = make_engine([job("existing", "true", "daily", "02:00")], clock=ManualClock(FIXED_NOW))
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a", *"moths", "tab", *"true", "tab", "tab")
            app.screen.query_one("#schedule_type").value = "sun"
            await pilot.press("tab", *"sunset+30m")
            await wait_until(pilot, lambda: "latitude and longitude" in hint(app), what="the place error")

    run(go())


def test_the_job_table_shows_the_selected_jobs_whole_schedule_in_words(make_engine):
    engine = make_engine([job("existing", "true", "daily", "02:00"),
                          job("nighttraps", "true", "interval", "10m", window="sunset+30m..sunrise-1h", jitter="1m")],
                         clock=ManualClock(FIXED_NOW), **PLACE)
    app = console(engine)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("down")
            await wait_until(pilot, lambda: "nighttraps · every 10m, sunset+30m to sunrise−1h, +≤1m random · next" in screen_text(app),
                             what="the detail line")

    run(go())
