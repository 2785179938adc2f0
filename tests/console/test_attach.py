"""The console attached to a real daemon (a subprocess): same screens, same keys, runs in the daemon."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from insect_console.app import create_app
from insect_console.config import ConfigStore
from insect_console.history import HistoryReader
from insect_console.remote import RemoteEngine
from insect_console.screens import ConfirmScreen, OutputScreen

from helpers import PY, Daemon, job, write_config
from .conftest import console_settings, fixed_stats, run, screen_text, wait_until

SIZE = (80, 24)
STEPS = f"{PY} -c \"import time\nfor i in range(4):\n    print('step', i, flush=True)\n    time.sleep(0.3)\""


@pytest.fixture
def daemon(tmp_path: Path):
    """A headless scheduler on tmp_path/config.toml (helpers.Daemon), its control socket up;
    ended after the test."""
    config = write_config(tmp_path, [job("steps", STEPS, "daily", "02:00"), job("other", "true", "daily", "02:00")],
                          console_settings(), rel="config.toml")
    d = Daemon(tmp_path, config=str(config))
    try:
        d.started()
        store = ConfigStore(config, tmp_path)
        assert (store.runtime_dir / "control.sock").exists()
        yield d, store
    finally:
        d.stop()


def test_run_now_from_an_attached_console_runs_in_the_daemon(daemon):
    d, store = daemon
    proc = d.proc
    remote = RemoteEngine(store)
    remote.start()
    app = create_app(remote, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: f"attached to daemon pid {proc.pid}" in screen_text(app), what="the banner")
            await pilot.press("r")  # the cursor starts on the first row: steps
            await pilot.press("l")
            await wait_until(pilot, lambda: isinstance(app.screen, OutputScreen), what="the output screen")
            await wait_until(pilot, lambda: "step 3" in screen_text(app), what="the output lines, live from the daemon")
            await wait_until(pilot, lambda: HistoryReader(remote.log_dir).latest(), what="the record")

    try:
        run(go())
    finally:
        remote.stop()
    record = HistoryReader(remote.log_dir).latest()[0]
    assert record["job_name"] == "steps" and record["status"] == "success" and record["trigger"] == "manual"
    assert "steps: started (manual" in d.log  # the daemon ran it, not the console
    assert proc.poll() is None  # and goes on after the console left


def test_the_console_says_when_the_daemon_goes_away(daemon):
    d, store = daemon
    proc = d.proc
    remote = RemoteEngine(store)
    remote.start()
    app = create_app(remote, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "attached to daemon pid" in screen_text(app), what="the banner")
            os.killpg(proc.pid, signal.SIGKILL)
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the offer to start a scheduler")
            await wait_until(pilot, lambda: f"The daemon (pid {proc.pid}) has stopped." in screen_text(app), what="the dialog text")
            await wait_until(pilot, lambda: "GONE" in screen_text(app), what="the banner to say so")
            await pilot.press("y")  # start this console's own engine
            await wait_until(pilot, lambda: not app.attached and app.engine.running, what="the console's own engine")
            await wait_until(pilot, lambda: "daemon pid" not in screen_text(app).splitlines()[0], what="the banner to go")
            app.engine.stop(0)

    try:
        run(go())
    finally:
        remote.stop()
        app.engine.stop(0)
