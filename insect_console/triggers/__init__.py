"""Schedules as pure triggers: `next_fire(previous, now)` gives the next due time.

`base` declares the interface (`Trigger`, `due_times`, `Site`, the time-zone edge); each
schedule type is a small module beside it (interval, fixed, cron, sun, window, boot, jitter);
`first_due` makes a job's trigger. The scheduler (scheduling.py) only asks triggers; it never
computes a due time itself. Modules that need a library (cronsim, astral) are imported only
for the jobs that use them, so `list` of plain jobs stays light.
"""

from __future__ import annotations

import datetime as dt

from insect_console.jobs import When
from insect_console.triggers.base import Boot, Movable, Site, Trigger, aware, due_times, naive_local, utc
from insect_console.triggers.interval import IntervalTrigger, first_on_grid

__all__ = ["Boot", "Movable", "Site", "Trigger", "aware", "due_times", "naive_local", "trigger_for", "first_due",
           "IntervalTrigger", "explain", "missing"]


def trigger_for(when: When, site: Site, origin: dt.datetime, name: str = "", done_this_boot: bool = False) -> Trigger:
    """The trigger of a parsed schedule. `origin` (aware) is a due time of an interval's grid;
    `name` keys the jitter; `done_this_boot`: a boot job already ran in this boot."""
    trigger: Trigger
    if when.kind == "interval":
        trigger = IntervalTrigger(dt.timedelta(seconds=when.seconds or 1), origin)
    elif when.kind == "cron":
        from insect_console.triggers.cron import CronTrigger

        trigger = CronTrigger(when.cron or "", site.zone)
    elif when.kind == "sun":
        from insect_console.triggers.sun import SunTrigger

        trigger = SunTrigger(when.sun, site)
    elif when.kind == "boot":
        from insect_console.triggers.boot import BootTrigger

        booted = site.boot.at if site.boot is not None else origin
        trigger = BootTrigger(dt.timedelta(seconds=when.seconds or 0), booted, done_this_boot)
    else:
        from insect_console.triggers.fixed import FixedTimeTrigger

        trigger = FixedTimeTrigger(when.at or "00:00:00", site.zone, when.weekday if when.kind == "weekly" else None)
    if when.window is not None:
        from insect_console.triggers.window import WindowTrigger

        trigger = WindowTrigger(trigger, when.window, site)
    if when.jitter:
        from insect_console.triggers.jitter import jittered

        trigger = jittered(trigger, dt.timedelta(seconds=when.jitter), f"{site.seed}|{name}")
    return trigger


def first_due(when: When, site: Site, now: dt.datetime, anchor: dt.datetime | None = None, name: str = "",
              done_this_boot: bool = False) -> tuple[Trigger, dt.datetime | None]:
    """A job's trigger as a scheduler starting at `now` makes it, and its first due time.

    A plain interval starts one period from now, or on the grid of its last run (`anchor`), so
    a restart does not push it a whole period later; every other schedule asks its trigger.
    """
    now, anchor = utc(now), utc(anchor)
    if when.kind == "interval" and when.window is None:
        period = dt.timedelta(seconds=when.seconds or 1)
        first = first_on_grid(anchor, period, now) if anchor is not None else now + period
        trigger = trigger_for(when, site, first, name)
        if when.jitter:  # the grid's first point, jittered
            return trigger, trigger.next_fire(None, first - dt.timedelta(seconds=when.jitter))
        return trigger, first
    trigger = trigger_for(when, site, now, name, done_this_boot)
    return trigger, trigger.next_fire(None, now)


def explain(trigger: Trigger, when: dt.datetime) -> str:
    """What a due time comes from, for the preview ("sunset 21:43:05 on 2026-06-20, +30m"), or ""."""
    inner = getattr(trigger, "inner", None)
    if hasattr(trigger, "base_of") and inner is not None:  # jitter: explain the due time it delays
        base = trigger.base_of(when)
        return explain(inner, base) + (f", +{(when - base).total_seconds():.0f}s jitter" if base is not None else "") if base else ""
    said = trigger.explain(when) if hasattr(trigger, "explain") else ""
    if inner is not None and hasattr(inner, "explain"):
        said = ", ".join(x for x in (inner.explain(when), said) if x)
    return said


def missing(trigger: Trigger, start: dt.date, end: dt.date) -> list[str]:
    """Why days from `start` to `end` have no due time (no sunset in the midnight sun)."""
    for t in (trigger, getattr(trigger, "inner", None)):
        if t is not None and hasattr(t, "missing"):
            return t.missing(start, end)
    return []
