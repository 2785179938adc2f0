"""The console attached to a real daemon (a subprocess): same screens, same keys, runs in the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from insect_console.app import create_app
from insect_console.config import ConfigStore
from insect_console.history import HistoryReader
from insect_console.remote import RemoteEngine
from insect_console.screens import ConfirmScreen, OutputScreen

from .conftest import PY, fixed_stats, job, run, screen_text, wait_for, write_config

SIZE = (80, 24)
STEPS = f"{PY} -c \"import time\nfor i in range(4):\n    print('step', i, flush=True)\n    time.sleep(0.3)\""


@pytest.fixture
def daemon(tmp_path: Path):
    """A headless scheduler on tmp_path/config.toml, ended (and checked gone) after the test."""
    config = write_config(tmp_path / "config.toml", [job("steps", STEPS), job("other")])
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "insect_console", "-c", str(config), "scheduler", "--no-ui"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    store = ConfigStore(config, tmp_path)
    deadline = time.monotonic() + 20
    while not (store.runtime_dir / "control.sock").exists():
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.05)
    yield proc, store
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log.close()


def test_run_now_from_an_attached_console_runs_in_the_daemon(daemon):
    proc, store = daemon
    remote = RemoteEngine(store)
    remote.start()
    app = create_app(remote, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: f"attached to daemon pid {proc.pid}" in screen_text(app), what="the banner")
            await pilot.press("r")  # the cursor starts on the first row: steps
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, OutputScreen), what="the output screen")
            await wait_for(pilot, lambda: "step 3" in screen_text(app), what="the output lines, live from the daemon")
            await wait_for(pilot, lambda: HistoryReader(remote.log_dir).latest(), what="the record")

    try:
        run(go())
    finally:
        remote.stop()
    record = HistoryReader(remote.log_dir).latest()[0]
    assert record["job_name"] == "steps" and record["status"] == "success" and record["trigger"] == "manual"
    log = (store.base_dir / "daemon.log").read_text()
    assert "steps: started (manual" in log  # the daemon ran it, not the console
    assert proc.poll() is None  # and goes on after the console left


def test_the_console_says_when_the_daemon_goes_away(daemon):
    proc, store = daemon
    remote = RemoteEngine(store)
    remote.start()
    app = create_app(remote, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "attached to daemon pid" in screen_text(app), what="the banner")
            os.killpg(proc.pid, signal.SIGKILL)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the offer to start a scheduler")
            await wait_for(pilot, lambda: f"The daemon (pid {proc.pid}) has stopped." in screen_text(app), what="the dialog text")
            await wait_for(pilot, lambda: "GONE" in screen_text(app), what="the banner to say so")
            await pilot.press("y")  # start this console's own engine
            await wait_for(pilot, lambda: not app.attached and app.engine.running, what="the console's own engine")
            await wait_for(pilot, lambda: "daemon pid" not in screen_text(app).splitlines()[0], what="the banner to go")
            app.engine.stop(0)

    try:
        run(go())
    finally:
        remote.stop()
        app.engine.stop(0)
