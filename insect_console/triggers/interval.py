"""Interval schedules: a grid of due times `origin + k * period` that counts elapsed time.

Lateness never accumulates (the next due time comes from the grid, not from when a run
started) and missed periods are skipped, not caught up one by one: the next due time is the
first grid point not before now. DST does not touch the grid; a wall-clock jump moves it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from insect_console.triggers.base import utc


@dataclass(frozen=True)
class IntervalTrigger:
    period: dt.timedelta
    origin: dt.datetime
    """A due time of the grid (aware)."""

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        previous, now = utc(previous), utc(now)
        floor = now if previous is None or previous < now else previous
        origin = utc(self.origin)  # arithmetic on UTC: on a zone's clock it would be wall-clock arithmetic
        when = origin - self.period * ((origin - floor) // self.period)  # first grid point ≥ floor
        if previous is not None and when <= previous:
            when += self.period
        return utc(when)

    def moved(self, delta: dt.timedelta) -> "IntervalTrigger":
        return replace(self, origin=self.origin + delta)


def first_on_grid(anchor: dt.datetime, period: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """Where a restarted scheduler puts an interval job that last ran at `anchor`: the first
    `anchor + k * period` after `now` (k ≥ 1). An anchor ahead of now (the clock went back) is
    kept if it is less than a period away, else the job starts a period from now."""
    if anchor > now:
        return min(anchor, now + period)
    return anchor + period * ((now - anchor) // period + 1)
