"""The Pi's clock: NTP steps the wall clock forward or back, by hours or days, or in many small steps.

The engine runs in-process on an injected clock (a ManualClock that also reports when the
engine's loop is waiting), with real runs of `true`. `set()` moves the wall clock only (a jump),
`tick()` lets monotonic time pass. Required: no storm (each job runs at most once for the periods
it missed), no stall (the next runs follow the new clock within a minute), each jump logged,
and the documented rule: interval jobs keep their spacing; fixed-time jobs catch up once after a
forward jump of up to 3 h, don't run twice after a backward one, and reset after a larger jump.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from insect_console.clock import ManualClock
from insect_console.engine import Engine
from insect_console.events import ClockJumped, RunSkipped, RunStarted

from .kit import fast, job, note, read_state, write_config

SAT = dt.datetime(2025, 3, 8)  # a Saturday
PERIOD = {"iv": dt.timedelta(minutes=10), "daily": dt.timedelta(days=1), "weekly": dt.timedelta(days=7)}


class StepClock(ManualClock):
    """A ManualClock that tells the test when the engine's loop is waiting, and until when."""

    def __init__(self, start: dt.datetime) -> None:
        super().__init__(start)
        self.loop = threading.Condition()
        self.waits = 0
        self.deadline: float | None = None

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self.loop:
            self.waits += 1
            self.deadline = self.monotonic() + timeout
            self.loop.notify_all()
        try:
            return super().wait(event, timeout)
        finally:
            with self.loop:
                self.deadline = None


class Station:
    """An engine on a StepClock, with the runs and jumps it reported."""

    def __init__(self, base: Path, start: dt.datetime) -> None:
        config = write_config(
            base,
            [
                job("iv", "true", "interval", "600"),
                job("daily", "true", "daily", "02:00"),
                job("weekly", "true", "weekly", "sun 03:00"),
            ],
            settings=fast(),
        )
        self.config = config
        self.clock = StepClock(start)
        self.engine = Engine(config, base_dir=base, clock=self.clock)
        self.runs: Counter = Counter()
        self.jumps: list[float] = []
        self.engine.subscribe(self._on_event)
        self.engine.start()
        self._idle()

    def _on_event(self, event) -> None:
        if isinstance(event, (RunStarted, RunSkipped)):
            self.runs[event.job_name] += 1
        elif isinstance(event, ClockJumped):
            self.jumps.append(event.seconds)

    def _idle(self) -> None:
        """Wait (real time) until the loop sleeps again and no run is in progress."""
        deadline = time.monotonic() + 30
        with self.clock.loop:
            while self.clock.deadline is None:
                assert self.clock.loop.wait(max(0.0, deadline - time.monotonic())), "the engine's loop never slept"
        while self.engine.active_runs():
            assert time.monotonic() < deadline, "runs never finished"
            time.sleep(0.005)

    def tick(self, seconds: float = 1.0, times: int = 1) -> None:
        """Let `seconds` of real (monotonic) time pass, `times` times, letting the loop react each time."""
        for _ in range(times):
            with self.clock.loop:
                waits, deadline = self.clock.waits, self.clock.deadline
            self.clock.advance(seconds)
            if deadline is not None and self.clock.monotonic() >= deadline:
                limit = time.monotonic() + 30
                with self.clock.loop:
                    while self.clock.waits == waits:
                        assert self.clock.loop.wait(max(0.0, limit - time.monotonic())), "the loop did not wake"
            self._idle()

    def wake(self) -> None:
        """Wake the loop now (as a config change does) and wait until it sleeps again."""
        with self.clock.loop:
            waits = self.clock.waits
        self.engine.request_reload()
        limit = time.monotonic() + 30
        with self.clock.loop:
            while self.clock.waits == waits:
                assert self.clock.loop.wait(max(0.0, limit - time.monotonic())), "the loop did not wake"
        self._idle()

    def jump(self, delta: dt.timedelta) -> None:
        """NTP steps the wall clock; then a minute passes."""
        self.clock.set(self.clock.now() + delta)
        note(faults_injected=1)
        self.tick(1, 60)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def next_run(self, name: str) -> dt.datetime:
        return self.engine.scheduler.next_run(name)

    def assert_follows_the_clock(self, back: dt.timedelta = dt.timedelta(0)) -> None:
        """No stall: every next run is after now, and within one period of it (plus a backward jump
        for a fixed time that already ran before the clock went back)."""
        now = self.now()
        for name, period in PERIOD.items():
            nxt = self.next_run(name)
            assert nxt is not None and now < nxt <= now + period + back, (name, now, nxt)
        published = read_state(self.config)["next_runs"]
        for name in PERIOD:
            assert dt.datetime.fromisoformat(published[name]) == self.next_run(name).replace(microsecond=0), name

    def stop(self) -> None:
        self.engine.stop(grace=5)
        note(runs_recorded=sum(self.runs.values()))


@pytest.fixture
def station(tmp_path: Path):
    made: list[Station] = []

    def make(start: dt.datetime) -> Station:
        s = Station(tmp_path, start)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def test_forward_5h_resets_fixed_times_without_a_storm(station, caplog):
    caplog.set_level(logging.WARNING, logger="insect_console.engine")
    s = station(SAT.replace(hour=1, minute=30))
    s.tick(10, 12)  # 01:32, nothing due
    assert s.runs == Counter()
    s.jump(dt.timedelta(hours=5))  # 06:3x: 02:00 was jumped over, but by more than 3 h
    assert len(s.jumps) == 1 and abs(s.jumps[0] - 5 * 3600) < 2
    assert sum("wall clock jumped" in r.getMessage() for r in caplog.records) == 1
    assert s.runs == Counter(), "a jump over 3 h runs nothing by itself"
    s.assert_follows_the_clock()
    assert s.next_run("daily") == SAT.replace(day=9, hour=2)
    s.tick(10, 180)  # half an hour more: iv every 10 min on the new clock
    assert s.runs == Counter(iv=3)


def test_forward_10_days(station):
    s = station(SAT.replace(hour=1, minute=30))
    s.tick(10, 12)
    s.jump(dt.timedelta(days=10))  # Tuesday 18th 01:33
    assert len(s.jumps) == 1 and abs(s.jumps[0] - 10 * 86400) < 2
    assert s.runs == Counter()
    s.assert_follows_the_clock()
    assert s.next_run("daily") == dt.datetime(2025, 3, 18, 2, 0)
    assert s.next_run("weekly") == dt.datetime(2025, 3, 23, 3, 0)
    s.tick(10, 240)  # 40 min: iv 4 times, daily once at 02:00
    assert s.runs == Counter(iv=4, daily=1)


def test_forward_2h_catches_up_once(station):
    s = station(SAT.replace(hour=1, minute=30))
    s.tick(10, 12)
    s.jump(dt.timedelta(hours=2))  # 03:3x: 02:00 was jumped over by less than 3 h
    assert s.runs == Counter(daily=1), "a fixed time jumped over runs once, interval jobs don't burst"
    s.assert_follows_the_clock()
    s.tick(10, 60)
    assert s.runs == Counter(daily=1, iv=1)


def test_backward_1h_does_not_run_twice(station):
    s = station(SAT.replace(hour=1, minute=55))
    s.tick(10, 66)  # 02:06: daily ran at 02:00, iv at 02:05
    assert s.runs == Counter(daily=1, iv=1)
    s.jump(dt.timedelta(hours=-1))  # 01:0x again
    assert len(s.jumps) == 1 and abs(s.jumps[0] + 3600) < 2
    s.assert_follows_the_clock(back=dt.timedelta(hours=1))
    s.tick(10, 420)  # 70 min, the new clock passes 02:00 again
    assert s.runs["daily"] == 1, "02:00 already ran today"
    assert s.runs["iv"] == 1 + 7, "iv keeps its 10-minute spacing in elapsed time"
    s.assert_follows_the_clock()


def test_many_small_steps_forward(station):
    """NTP slewing in steps: 4 s of wall time per second, across 02:00."""
    s = station(SAT.replace(hour=1, minute=50))
    for _ in range(300):
        s.clock.set(s.now() + dt.timedelta(seconds=3))
        s.tick(1)
    note(faults_injected=300)
    # 20 min of wall clock, 5 min of elapsed time
    assert s.runs["daily"] == 1
    assert s.runs["iv"] <= 2 and s.runs["weekly"] == 0
    s.assert_follows_the_clock()


def test_clock_fighting_around_a_fixed_time(station):
    """The clock steps back and forth over 02:00 (two time sources fighting): 02:00 runs once."""
    s = station(SAT.replace(hour=1, minute=59, second=30))
    for i in range(60):
        s.clock.set(s.now() + dt.timedelta(seconds=20 if i % 2 == 0 else -20))
        s.wake()  # the loop sees every step
        s.tick(1)
    note(faults_injected=60)
    s.tick(10, 12)
    assert s.runs["daily"] == 1
    assert s.runs["iv"] == 0
    assert len(s.jumps) >= 30
    s.assert_follows_the_clock()
