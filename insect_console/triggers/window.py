"""Windows: an interval or cron job runs only between two times of day, which may be sun
events and may cross midnight ("sunset+30m..sunrise-1h", "21:00..05:00").

A window opens on a day at its start and closes at the first end after that (so "21:00..05:00"
closes the next morning). Inside it a cron job runs at its own times; an interval job's grid
starts at each opening (the opening is a run, then every period until the close). Outside, the
next run is in the window's next opening. A day whose start or end event does not happen (no
sunset in the midnight sun) has no window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from insect_console.jobs import Window
from insect_console.triggers.base import Site, Trigger, utc, wall
from insect_console.triggers.interval import IntervalTrigger
from insect_console.triggers.sun import SEARCH_DAYS, day_time_on, missing_days


@dataclass(frozen=True)
class WindowTrigger:
    inner: Trigger
    window: Window
    site: Site

    def openings(self, after: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """(open, close) of each window that closes after `after`, in order."""
        day = wall(after, self.site.zone).date() - dt.timedelta(days=1)  # one that opened yesterday may still be open
        for i in range(SEARCH_DAYS):
            d = day + dt.timedelta(days=i)
            start = utc(day_time_on(self.window.start, d, self.site))
            if start is None:
                continue
            end = utc(day_time_on(self.window.end, d, self.site))
            if end is None or end <= start:
                end = utc(day_time_on(self.window.end, d + dt.timedelta(days=1), self.site))
            if end is None or end <= start:
                continue
            if end > after:
                yield start, end

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        previous, now = utc(previous), utc(now)
        floor = now if previous is None or previous < now else previous
        for start, end in self.openings(floor):
            inner = IntervalTrigger(self.inner.period, start) if isinstance(self.inner, IntervalTrigger) else self.inner
            when = inner.next_fire(previous, max(now, start))
            if when is not None and when < end:
                return when
        return None

    def explain(self, when: dt.datetime) -> str:
        for start, end in self.openings(utc(when)):
            if start <= when:
                zone = self.site.zone
                return f"window {start.astimezone(zone):%H:%M} to {end.astimezone(zone):%H:%M}" + (
                    f" (closes {end.astimezone(zone):%a})" if wall(end, zone).date() != wall(start, zone).date() else "")
            break
        return ""

    def missing(self, start: dt.date, end: dt.date) -> list[str]:
        return missing_days([self.window.start, self.window.end], start, end, self.site)
