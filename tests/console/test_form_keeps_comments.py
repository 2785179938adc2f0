"""A console form save and a space toggle go through the same ConfigStore path as the CLI: only
the changed job's lines change, comments stay, and keys the form does not show (a Healthchecks
ping_url) are kept."""

from __future__ import annotations

import difflib
import os
import textwrap

from textual.widgets import DataTable, Input

from insect_console.app import create_app
from insect_console.engine import Engine
from insect_console.screens import JobFormScreen

from .conftest import fixed_stats, run, wait_until

CONFIG = textwrap.dedent(
    """\
    # hand-written station config

    [settings]
    log_dir = "logs"      # short
    kill_grace = 1
    shutdown_grace = 2

    # the first job
    [[jobs]]
    name = "first"
    command = "true"          # does nothing
    schedule_type = "daily"
    schedule_time = "02:00"

    # the second job, pinged
    [[jobs]]
    name = "second"
    command = "echo two"      # says two
    schedule_type = "interval"
    schedule_time = "1h"
    ping_url = "http://127.0.0.1:9/0f7c3a8e-1111-2222-3333-444455556666"

    # the end
    """
)


def changed(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:2] in ("- ", "+ ")]


def test_a_form_save_and_a_toggle_change_only_that_jobs_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    os.chmod(path, 0o600)
    engine = Engine(path, base_dir=tmp_path)
    engine.start()
    app = create_app(engine, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index("second"))
            await pilot.pause()
            await pilot.press("e")
            form = app.screen
            form.query_one("#command", Input).value = "echo changed"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, JobFormScreen), what="the form to close")
            saved = path.read_text()
            assert changed(CONFIG, saved) == ['- command = "echo two"      # says two', '+ command = "echo changed"      # says two']
            table = app.screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index("first"))
            await pilot.pause()
            await pilot.press("space")
            await wait_until(pilot, lambda: path.read_text() != saved, what="the toggle to be written")
            assert changed(saved, path.read_text()) == ["+ enabled = false"]

    try:
        run(go())
    finally:
        engine.stop(0)
    assert engine.config.job("second").ping_url == "http://127.0.0.1:9/0f7c3a8e-1111-2222-3333-444455556666"
