"""`insect-console serve`: the console in a real headless Chromium, through textual-serve.

A real daemon; `serve` as a subprocess on a free loopback port; Chromium loads the page, and
the test reads what the page's terminal shows until the job table is there. A screenshot is
written to the test's temp dir (serve-jobs.png) for a person to look at. The browser's session
is a console attached to the daemon: the daemon is still the one scheduler.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import psutil
import pytest

from chromium import Chromium, Page, first_page
from helpers import Daemon, cli, cli_process, end_process, job, wait_for, write_config
from insect_console.config import ConfigStore
from insect_console.fileio import InstanceLock
from sshd import free_port

from .conftest import console_settings


@pytest.fixture
def daemon(tmp_path: Path):
    config = write_config(tmp_path, [job("nightly-report", "echo report", "daily", "02:00"), job("hourly-photo", "echo photo", "interval", "1h"),
                                     job("weekly-cleanup", "echo cleanup", "weekly", "sunday")], console_settings(), rel="config.toml")
    d = Daemon(tmp_path, config=str(config))
    try:
        d.started()
        yield d, config
    finally:
        d.stop()


def _sessions(serve: subprocess.Popen) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(serve.pid).children(recursive=True) if "--attach-only" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def test_serve_shows_the_job_table_in_headless_chromium(daemon, tmp_path):
    d, config = daemon
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out, cli_process(tmp_path, "serve", "--port", str(port), config=str(config), stdout=out, stderr=subprocess.STDOUT) as serve:
        wait_for(lambda: "Serving" in log.read_text(errors="replace") or serve.poll() is not None, timeout=60, what="serve to listen")
        assert serve.poll() is None, log.read_text()
        chromium = Chromium(tmp_path / "chromium")
        try:
            shot, text = asyncio.run(_load(chromium, f"http://127.0.0.1:{port}/", tmp_path / "serve-jobs.png", d.pid))
        finally:
            chromium.close()
        sessions = _sessions(serve)
        assert sessions, "the page's session runs an attached console"
        end_process(serve, timeout=20)
        psutil.wait_procs(sessions, timeout=20)
    for name in ("nightly-report", "hourly-photo", "weekly-cleanup"):
        assert name in text, text
    assert f"attached to daemon pid {d.pid}" in text and "daily 02:00" in text
    assert shot.stat().st_size > 10_000  # a picture, for a person to look at
    store = ConfigStore(config, tmp_path)
    assert InstanceLock.holder(store.scheduler_lock_path) == d.pid  # still the one scheduler
    assert "scheduler started" not in log.read_text(errors="replace")


async def _load(chromium: Chromium, url: str, shot: Path, pid: int) -> tuple[Path, str]:
    async with aiohttp.ClientSession() as http:
        ws = await first_page(chromium, http)
        try:
            page = Page(ws)
            await page.open(url)
            await page.wait_for_text("nightly-report", "weekly-cleanup", f"attached to daemon pid {pid}", timeout=90)
            await page.click(500, 5)  # focus the page, as a person's first tap does: Textual's footer shows the keys then
            text = await page.wait_for_text("r Run", "h History", timeout=30)
            await asyncio.sleep(0.5)  # the next repaint lands before the picture
            await page.screenshot(shot)
            return shot, text
        finally:
            await ws.close()


def test_serve_refuses_without_a_daemon_or_on_a_public_address_without_public(tmp_path):
    config = write_config(tmp_path, [job("a", "true", "daily", "02:00")], console_settings(), rel="config.toml")
    done = cli(tmp_path, "serve", config=str(config))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no daemon is running for config.toml" in done.stderr and "never starts a second scheduler" in done.stderr
    done = cli(tmp_path, "serve", "--bind", "0.0.0.0", config=str(config))
    assert done.returncode == 2 and "no authentication" in done.stderr and "--public" in done.stderr and "ssh -L 8000:127.0.0.1:8000" in done.stderr
    done = cli(tmp_path, "--attach-only", config=str(config))  # what a browser session runs, with no daemon
    assert done.returncode == 2 and "can't connect to the daemon" in done.stderr and "Traceback" not in done.stderr, done.stderr
