"""cron lines, computed by cronsim (Debian cron's semantics, DST included; no dependencies).

cronsim iterates in the station's zone. As Debian cron does, a line at fixed minutes and hours
("30 2 * * *") follows the local clock: a time in the hour skipped in spring runs at the first
minute that exists after it, a time in the repeated autumn hour runs once. A line with `*` in
its minute or hour field ("*/10 * * * *") runs at every matching minute the clock shows, by
elapsed time, so it runs in both passes of a repeated hour (cron(8): "jobs that run more
frequently are scheduled normally").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from insect_console.triggers.base import utc

_SECOND = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class CronTrigger:
    expr: str
    """Five fields, macros already expanded (jobs.cron_fields)."""
    zone: dt.tzinfo

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        from cronsim import CronSim

        previous, now = utc(previous), utc(now)
        strict = previous is not None and previous >= now
        floor = previous if strict else now
        # cronsim yields times strictly after its start second: start a second early for "≥ now"
        it = CronSim(self.expr, floor.astimezone(self.zone) - (dt.timedelta(0) if strict else _SECOND))
        for _ in range(100_000):
            try:
                when = utc(next(it))
            except StopIteration:  # nothing for 50 years
                return None
            if when > floor or (when == floor and not strict):
                return when
        return None
