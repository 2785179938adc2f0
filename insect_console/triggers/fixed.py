"""Daily and weekly schedules (the spec's fixed times), computed by the `schedule` library.

`schedule` knows "every day at 02:00" and "every Sunday at 03:00" on a naive clock. Here it is
given the wall clock of the station's zone, and its answer, a wall time, becomes an instant by
the one DST rule (`base.at_wall`): a time skipped in spring runs at the end of the gap, a time
repeated in autumn runs once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import schedule

from insect_console.clock import FixedNow, use_clock
from insect_console.triggers.base import at_wall, utc, wall

_TINY = dt.timedelta(microseconds=1)


def _schedule_job(weekday: str | None, at: str) -> schedule.Job:
    job = schedule.Job(1)
    job = getattr(job, weekday) if weekday else job.day
    return job.at(at)


@dataclass(frozen=True)
class FixedTimeTrigger:
    """Every day (`weekday` None) or every `weekday` at `at` (HH:MM:SS) on the clock of `zone`."""

    at: str
    zone: dt.tzinfo
    weekday: str | None = None

    def _wall_after(self, when: dt.datetime) -> dt.datetime:
        """The first wall time of the schedule strictly after the wall time `when`."""
        job = _schedule_job(self.weekday, self.at)
        with use_clock(FixedNow(when)):
            job._schedule_next_run()  # schedule's own computation, at a stopped clock
        return job.next_run

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        previous, now = utc(previous), utc(now)
        strict = previous is not None and previous >= now
        start = previous if strict else now
        cursor = wall(start, self.zone) - (dt.timedelta(0) if strict else _TINY)
        while True:
            cursor = self._wall_after(cursor)
            when = utc(at_wall(cursor, self.zone))
            # on the autumn day a wall time can map to an instant before `start` (start in the
            # repeated hour's second pass): then the next wall time is the answer
            if when > start or (when == start and not strict):
                return when
