"""Fixtures: a leak guard for processes, engines that are always stopped, daemons that are always ended."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import pytest

from helpers import Daemon, leftover_guard, stop_cli_server

HERE = Path(__file__).parent


@pytest.fixture(scope="session", autouse=True)
def cli_fork_server():
    """End the warm CLI fork server (see helpers.cli_forked) after the session."""
    yield
    stop_cli_server()


@pytest.fixture(autouse=True)
def process_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Tag every process the test starts (through the environment) and fail if one outlives it.

    The engine's runs, the CLI and daemon subprocesses, their jobs, and jobs that called setsid
    all inherit the tag, so a leftover of any kind is found, ended, and reported. Only for the
    test files of this directory: the suites in subdirectories have their own fixtures.
    """
    if request.node.path.parent != HERE:
        yield None
        return
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
    """Start headless schedulers with `daemons(cwd, ...)`; every one is ended afterwards."""
    started: list[Daemon] = []

    def start(cwd: Path, **kwargs) -> Daemon:
        d = Daemon(cwd, **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
