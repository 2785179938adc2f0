"""Fixtures of the engine suite: a leak guard for processes, engines that are always stopped,
daemons that are always ended, and the end of the warm CLI fork server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import pytest

from forkserver import stop_cli_server
from helpers import Daemon, leftover_guard


@pytest.fixture(scope="session", autouse=True)
def cli_fork_server():
    """End the warm CLI fork server (see forkserver.cli_forked) after the session."""
    yield
    stop_cli_server()


@pytest.fixture(autouse=True)
def process_guard(monkeypatch: pytest.MonkeyPatch):
    """Tag every process the test starts (through the environment) and fail if one outlives it.

    The engine's runs, the CLI and daemon subprocesses, their jobs, and jobs that called setsid
    all inherit the tag, so a leftover of any kind is found, ended, and reported.
    """
    with leftover_guard(monkeypatch, timeout=5) as tag:
        yield tag
        for thread in threading.enumerate():
            if thread.name == "notify":
                thread.join(timeout=30)


@pytest.fixture
def engines() -> Callable:
    """Build engines with `engines(config_path, base_dir=..., clock=...)`; all are stopped afterwards."""
    from insect_console.engine import Engine

    made: list[Engine] = []

    def make(config_path, **kwargs) -> Engine:
        engine = Engine(config_path, **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.stop(grace=0)


@pytest.fixture
def daemons() -> Callable:
    """Start headless schedulers with `daemons(base, ...)` (helpers.Daemon's arguments); every
    one is ended afterwards."""
    started: list[Daemon] = []

    def start(base: Path, **kwargs) -> Daemon:
        d = Daemon(base, **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
