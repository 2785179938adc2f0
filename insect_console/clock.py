"""Wall-clock access in one place, so schedule logic can be tested with an injected clock.

The `schedule` library reads `datetime.datetime.now()` itself. `use_clock` routes that read to
our clock object for the duration of a call, which is how the engine drives a private
`schedule.Scheduler` on a clock that tests can move by hand.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import threading
import time
from typing import Iterator, Protocol



class Clock(Protocol):
    def now(self) -> _dt.datetime:
        """Naive local time, as the `schedule` library uses."""

    def monotonic(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until `event` is set or `timeout` seconds pass on this clock."""


SPIN = 0.001
"""A short wait's last millisecond is spun, so a job due at 02:00:00 starts then, not 0.3 ms later."""
PRECISE = 0.1
"""Waits up to this long (a run prepared ahead waiting for its instant) end precisely."""


class SystemClock:
    """The real clock."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if timeout > PRECISE:
            return event.wait(timeout)  # the loop's long sleeps: no spin, no extra wakeups
        end = time.monotonic() + max(0.0, timeout)
        if timeout > SPIN and event.wait(timeout - SPIN):
            return True
        while not event.is_set() and time.monotonic() < end:
            time.sleep(0)  # the last moment is spun (yielding the GIL): a timed wait wakes 0.1-0.5 ms late
        return event.is_set()


class ManualClock:
    """A clock that only moves when told to: `set()` and `advance()`. For tests and benchmarks.

    A thread that read the clock and then waits does not sleep through a move made in between
    (its wait returns at once, as a spurious wakeup), so a test's `advance()` just after starting
    an engine is never lost in the gap between the loop's look at the time and its sleep.
    """

    def __init__(self, start: _dt.datetime) -> None:
        self._now = start
        self._mono = 1000.0
        self._moves = 0
        self._seen = threading.local()
        self._changed = threading.Condition()
        self.sleeping = 0
        """Threads in `wait()` now: a test moves the clock once the engine's loop sleeps."""
        self.sleeps = 0
        """Sleeps begun so far: a count that went up means a thread reacted and slept again."""

    def now(self) -> _dt.datetime:
        self._seen.moves = self._moves
        return self._now

    def monotonic(self) -> float:
        self._seen.moves = self._moves
        return self._mono

    def set(self, when: _dt.datetime) -> None:
        """Jump the wall clock (as NTP does); monotonic time does not move."""
        with self._changed:
            self._now = when
            self._moves += 1
            self._changed.notify_all()

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += _dt.timedelta(seconds=seconds)
            self._mono += seconds
            self._moves += 1
            self._changed.notify_all()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._changed:
            if getattr(self._seen, "moves", self._moves) != self._moves:
                return event.is_set()  # moved since this thread last looked: look again first
            deadline = self._mono + timeout
            self.sleeping += 1
            self.sleeps += 1
            try:
                while not event.is_set() and self._mono < deadline:
                    self._changed.wait(0.05)
            finally:
                self.sleeping -= 1
        return event.is_set()


class FixedNow:
    """A clock stopped at one instant, for computing a due time "as of" that instant."""

    def __init__(self, at: _dt.datetime) -> None:
        self._at = at

    def now(self) -> _dt.datetime:
        return self._at


_current: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("insect_clock", default=None)


class _ClockedDatetime(_dt.datetime):
    """`datetime.datetime` whose `now()` asks the clock set by `use_clock`, if any."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        clock = _current.get()
        if clock is None or tz is not None:
            return _dt.datetime.now(tz)
        return clock.now()


class _ClockedDatetimeModule:
    """Stands in for the `datetime` module inside `schedule` only."""

    datetime = _ClockedDatetime

    def __getattr__(self, name: str):
        return getattr(_dt, name)


def _patch_schedule() -> None:
    """Route `schedule`'s reads of the time through `_current` (once; `schedule` is imported
    only by what computes with it, not by `list` when a daemon publishes its next runs)."""
    import schedule

    if not isinstance(getattr(schedule, "datetime", None), _ClockedDatetimeModule):
        schedule.datetime = _ClockedDatetimeModule()  # type: ignore[attr-defined]


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[None]:
    """Make `schedule`'s reads of the current time return `clock.now()` in this context."""
    _patch_schedule()
    token = _current.set(clock)
    try:
        yield
    finally:
        _current.reset(token)
