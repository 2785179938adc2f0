"""Snapshots of every screen at 80x24, with fixed data and a fixed clock (ManualClock).

Nothing time-varying reaches these: the clock is manual, the stats are fixed, the jobs never
become due, and the history and state are written by the fixture. Update with
`pytest tests/console --snapshot-update` after checking the change by eye.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Select

from insect_console.app import create_app
from insect_console.screens import QuitScreen

from .conftest import fixed_stats, screen_text, settle, wait_until

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _colour(monkeypatch):
    """Snapshots are taken in colour unless a test asks otherwise, whatever the environment says."""
    monkeypatch.delenv("NO_COLOR", raising=False)


def console(engine):
    return create_app(engine, stats_provider=fixed_stats)


def test_jobs_screen(snap_compare, snapshot_engine):
    assert snap_compare(console(snapshot_engine), terminal_size=SIZE)


def test_jobs_screen_without_colour(snap_compare, snapshot_engine, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, press=["down", "down"])


def test_output_of_the_last_run(snap_compare, snapshot_engine):
    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, press=["down", "l"])


def test_add_form_with_errors(snap_compare, snapshot_engine):
    async def fill(pilot):
        await pilot.press("a")
        form = pilot.app.screen
        form.query_one("#name", Input).value = "new job"
        form.query_one("#command", Input).value = "ls | wc -l"
        form.query_one("#schedule_type", Select).value = "daily"
        form.query_one("#schedule_time", Input).value = "25:00"
        await pilot.pause()
        await pilot.press("ctrl+s")

    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, run_before=fill)


def test_edit_form(snap_compare, snapshot_engine):
    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, press=["down", "down", "down", "e"])


async def _history_loaded(pilot) -> None:
    """Open the history and wait until its page and trends are in (not a fixed sleep: a busy CI box is slow)."""
    await pilot.press("h")
    await wait_until(pilot, lambda: "end of history" in screen_text(pilot.app) and "last 0.3s" in screen_text(pilot.app), what="the history page")
    print("the history screen as the snapshot is taken:", await settle(pilot), sep="\n")  # shown if it fails


def test_history(snap_compare, snapshot_engine):
    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, run_before=_history_loaded)


def test_run_detail(snap_compare, snapshot_engine):
    async def open_run(pilot) -> None:
        await _history_loaded(pilot)
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: "chatty line 12/12" in screen_text(pilot.app), what="the run's output")

    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, run_before=open_run)


def test_help(snap_compare, snapshot_engine):
    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, press=["question_mark"])


def test_quit_with_runs_in_progress(snap_compare, snapshot_engine):
    async def ask(pilot):
        pilot.app.push_screen(QuitScreen(["chatty", "times-out"]))
        await pilot.pause()

    assert snap_compare(console(snapshot_engine), terminal_size=SIZE, run_before=ask)
