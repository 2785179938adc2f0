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

import schedule


class Clock(Protocol):
    def now(self) -> _dt.datetime:
        """Naive local time, as the `schedule` library uses."""

    def monotonic(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until `event` is set or `timeout` seconds pass on this clock."""


class SystemClock:
    """The real clock."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class ManualClock:
    """A clock that only moves when told to: `set()` and `advance()`. For tests and benchmarks."""

    def __init__(self, start: _dt.datetime) -> None:
        self._now = start
        self._mono = 1000.0
        self._changed = threading.Condition()

    def now(self) -> _dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: _dt.datetime) -> None:
        """Jump the wall clock (as NTP does); monotonic time does not move."""
        with self._changed:
            self._now = when
            self._changed.notify_all()

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += _dt.timedelta(seconds=seconds)
            self._mono += seconds
            self._changed.notify_all()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        deadline = self._mono + timeout
        with self._changed:
            while not event.is_set() and self._mono < deadline:
                self._changed.wait(0.05)
        return event.is_set()


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


if not isinstance(getattr(schedule, "datetime", None), _ClockedDatetimeModule):
    schedule.datetime = _ClockedDatetimeModule()  # type: ignore[attr-defined]


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[None]:
    """Make `schedule`'s reads of the current time return `clock.now()` in this context."""
    token = _current.set(clock)
    try:
        yield
    finally:
        _current.reset(token)
