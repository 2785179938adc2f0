"""`run_console`: refuses a second scheduler, starts and stops the engine around the app."""

from __future__ import annotations

import os
import signal

from textual.app import App

from insect_console import app as app_module
from insect_console.app import InsectConsole, run_console
from insect_console.cli import main
from insect_console.control import socket_path
from insect_console.engine import Engine

from helpers import job


def test_a_second_console_attaches_to_the_running_scheduler(make_engine, monkeypatch):
    first = make_engine([job("one", "true", "daily", "02:00")])
    results: dict = {}

    def run(self, **_kw):
        async def auto(pilot):
            await pilot.pause(0.3)
            results["attached"] = self.attached
            results["pid"] = self.engine.daemon_pid
            await pilot.press("q")  # attached: quitting only detaches, nothing is asked

        return App.run(self, headless=True, size=(80, 24), auto_pilot=auto)

    monkeypatch.setattr(InsectConsole, "run", run)
    second = Engine(first.store.path, base_dir=first.store.base_dir)
    assert run_console(second) == 0
    assert results == {"attached": True, "pid": os.getpid()}
    assert first.running  # the console leaving did not stop the scheduler it was attached to
    assert not second.running


def test_a_scheduler_that_does_not_answer_is_refused(make_engine, capsys):
    """A config locked by a scheduler without a control socket: one line, exit 2, no second scheduler."""
    first = make_engine([job("one", "true", "daily", "02:00")])
    socket_path(first.store.runtime_dir).unlink()  # as an older or wedged daemon would have it
    second = Engine(first.store.path, base_dir=first.store.base_dir)
    assert run_console(second) == 2
    err = capsys.readouterr().err
    assert "a scheduler is already running" in err and "control socket" in err and err.count("\n") == 1
    assert not second.running
    assert main(["-c", str(first.store.path)]) == 2


def _headless_run(pressed: list[str], results: dict):
    def run(self, **_kw):
        async def auto(pilot):
            await pilot.pause(0.2)
            results["running_inside"] = self.engine.running
            for key in pressed:
                await pilot.press(key)
            await pilot.pause(0.2)

        return App.run(self, headless=True, size=(80, 24), auto_pilot=auto)

    return run


def test_run_console_starts_and_stops_the_engine(make_engine, monkeypatch):
    engine = make_engine([job("one", "true", "daily", "02:00")], start=False)
    results: dict = {}
    monkeypatch.setattr(InsectConsole, "run", _headless_run(["q"], results))
    before = signal.getsignal(signal.SIGTERM)
    assert run_console(engine) == 0
    assert results["running_inside"] is True
    assert not engine.running and engine._scheduler_lock is None  # stopped, lock released
    assert signal.getsignal(signal.SIGTERM) is before
    assert (engine.log_dir / "console.log").exists()  # the engine's log did not go to the terminal
    again = Engine(engine.store.path, base_dir=engine.store.base_dir)
    again.start()  # the config is free again
    again.stop(0)


def test_stop_them_ends_runs_on_the_way_out(make_engine, monkeypatch):
    engine = make_engine([job("long", "sleep 30", "daily", "02:00")], start=False)

    def run(self, **_kw):
        async def auto(pilot):
            await pilot.pause(0.2)
            self.engine.run_now("long")
            while getattr(self.engine.active_runs().get("long"), "pid", None) is None:
                await pilot.pause(0.05)
            await pilot.pause(0.2)
            await pilot.press("q", "s")

        return App.run(self, headless=True, size=(80, 24), auto_pilot=auto)

    monkeypatch.setattr(InsectConsole, "run", run)
    assert run_console(engine) == 0
    from insect_console.history import HistoryReader

    assert HistoryReader(engine.log_dir).latest()[0]["status"] == "interrupted"


def test_a_signal_stops_the_engine_and_exits(make_engine, monkeypatch):
    engine = make_engine([job("one", "true", "daily", "02:00")], start=False)

    def run(self, **_kw):
        async def auto(pilot):
            await pilot.pause(0.2)
            signal.raise_signal(signal.SIGTERM)
            for _ in range(200):  # the signal makes the app exit
                if self.quitting:
                    break
                await pilot.pause(0.05)

        return App.run(self, headless=True, size=(80, 24), auto_pilot=auto)

    monkeypatch.setattr(InsectConsole, "run", run)
    monkeypatch.setattr(app_module._Shutdown, "EXIT_WAIT", 30.0)
    assert run_console(engine) == 128 + signal.SIGTERM
    assert not engine.running and engine._scheduler_lock is None
