"""Schedules as pure triggers: `next_fire(previous, now)` gives the next due time.

`base` declares the interface (`Trigger`, `due_times`, the time-zone edge); each schedule type
is a small module beside it; `trigger_for` makes the trigger of a parsed schedule. The
scheduler (scheduling.py) only asks triggers; it never computes a due time itself.
"""

from __future__ import annotations

import datetime as dt

from insect_console.jobs import When
from insect_console.triggers.base import Movable, Site, Trigger, aware, due_times, naive_local
from insect_console.triggers.interval import IntervalTrigger, first_on_grid

__all__ = ["Movable", "Site", "Trigger", "aware", "due_times", "naive_local", "trigger_for", "first_due", "IntervalTrigger"]


def trigger_for(when: When, site: Site, origin: dt.datetime) -> Trigger:
    """The trigger of a parsed schedule. `origin` (aware) is a due time of an interval's grid."""
    if when.kind == "interval":
        return IntervalTrigger(dt.timedelta(seconds=when.seconds or 1), origin)
    from insect_console.triggers.fixed import FixedTimeTrigger

    return FixedTimeTrigger(when.at or "00:00:00", site.zone, when.weekday if when.kind == "weekly" else None)


def first_due(when: When, site: Site, now: dt.datetime, anchor: dt.datetime | None = None) -> tuple[Trigger, dt.datetime | None]:
    """A job's trigger as a scheduler starting at `now` makes it, and its first due time.

    An interval starts one period from now, or on the grid of its last run (`anchor`), so a
    restart does not push it a whole period later; every other type asks its trigger.
    """
    if when.kind == "interval":
        period = dt.timedelta(seconds=when.seconds or 1)
        first = first_on_grid(anchor, period, now) if anchor is not None else now + period
        return IntervalTrigger(period, first), first
    trigger = trigger_for(when, site, now)
    return trigger, trigger.next_fire(None, now)
