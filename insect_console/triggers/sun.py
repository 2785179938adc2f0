"""Sun events, computed by astral: sunrise, sunset, noon, dawn and dusk (civil, nautical,
astronomical), each plus an offset.

An event's time is an instant (astral works in UTC), so DST changes nothing here. At high
latitudes an event may not happen on a day (midnight sun, polar night): astral raises
ValueError, and that day is skipped; `missing` says which days, for the preview and `list`.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from insect_console.jobs import DayTime
from insect_console.triggers.base import Site, at_wall, utc, wall

SEARCH_DAYS = 400
"""How far ahead a sun time is looked for (a polar night at 78°N lasts four months)."""
_DEPRESSION = {"": 6.0, "nautical_": 12.0, "astronomical_": 18.0}


@functools.lru_cache(maxsize=4096)
def event_time(event: str, day: dt.date, latitude: float, longitude: float, elevation: float, zone: dt.tzinfo) -> dt.datetime | None:
    """When `event` happens on the local `day` in `zone`, or None when it does not that day."""
    from astral import Observer, sun

    observer = Observer(latitude, longitude, elevation)
    try:
        if event == "sunrise":
            return sun.sunrise(observer, day, zone)
        if event == "sunset":
            return sun.sunset(observer, day, zone)
        if event == "noon":
            return sun.noon(observer, day, zone)
        kind, _, direction = event.rpartition("_") if "_" in event else ("", "", event)
        depression = _DEPRESSION[kind + "_" if kind else ""]
        return (sun.dawn if direction == "dawn" else sun.dusk)(observer, day, depression, zone)
    except ValueError:
        return None


def day_time_on(spec: DayTime, day: dt.date, site: Site) -> dt.datetime | None:
    """A time of day (fixed, or a sun event + offset) on the local `day`; None when its event
    does not happen that day."""
    if spec.event is None:
        return at_wall(dt.datetime.combine(day, dt.time.fromisoformat(spec.at or "00:00:00")), site.zone)
    when = event_time(spec.event, day, site.latitude or 0.0, site.longitude or 0.0, site.elevation, site.zone)
    return None if when is None else utc(when) + dt.timedelta(seconds=spec.offset)  # elapsed time, not the wall clock


@dataclass(frozen=True)
class SunTrigger:
    """Every day at `spec` (a sun event + offset); a day without the event is skipped."""

    spec: DayTime
    site: Site

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        previous, now = utc(previous), utc(now)
        floor = now if previous is None or previous < now else previous
        day = wall(floor, self.site.zone).date() - dt.timedelta(days=1)  # an offset can reach back 12 h
        for i in range(SEARCH_DAYS):
            when = utc(day_time_on(self.spec, day + dt.timedelta(days=i), self.site))
            if when is not None and when >= now and (previous is None or when > previous):
                return when
        return None

    def explain(self, when: dt.datetime) -> str:
        """ "sunset 21:43:05 on 2026-06-20, +30m": the event's time and the day it was computed for."""
        event = when - dt.timedelta(seconds=self.spec.offset)
        local = event.astimezone(self.site.zone)
        offset = DayTime(event="x", offset=self.spec.offset).describe()[1:] if self.spec.offset else ""
        return f"{self.spec.event} {local:%H:%M:%S} on {local:%Y-%m-%d}" + (f", {offset}" if offset else "")

    def missing(self, start: dt.date, end: dt.date) -> list[str]:
        """Why days in [start, end] have no due time: "no sunset on 2026-06-21 at 69.6°N 18.9°E"
        (a run of days is one line: "no sunset from 2026-05-20 to 2026-07-22 at ...")."""
        return missing_days([self.spec], start, end, self.site)


def missing_days(specs: list[DayTime], start: dt.date, end: dt.date, site: Site) -> list[str]:
    out = []
    for spec in specs:
        if spec.event is None:
            continue
        run: list[dt.date] = []
        day = start
        while day <= end or run:
            absent = day <= end and day_time_on(spec, day, site) is None
            if absent:
                run.append(day)
            elif run:
                span = f"on {run[0]}" if len(run) == 1 else f"from {run[0]} to {run[-1]}"
                out.append(f"no {spec.event} {span} at {site.place}")
                run = []
            if day > end:
                break
            day += dt.timedelta(days=1)
    return out
