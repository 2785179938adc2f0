"""Which job is due when: a JobScheduler asks each job's trigger (see triggers/) on an
injectable clock, and keeps one next due time per job.

The engine never polls in a one-second loop: it asks `seconds_until_next()`, sleeps until a
moment before that (or until woken), takes the jobs due by then with `peek_due()`, starts them,
then moves them on with `move_on()`, which asks each trigger for the due time after the one
just taken. Times at this class's edge are the engine's naive local times; inside they are
aware, so a DST change is neither a clock jump nor a duplicate run.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from insect_console.clock import Clock, SystemClock
from insect_console.jobs import Job, When
from insect_console.triggers import Movable, Site, Trigger, aware, due_times as trigger_due_times, first_due, naive_local

log = logging.getLogger(__name__)


RESET_JUMP = 3 * 3600
"""A wall-clock jump larger than this resets fixed-time jobs instead of catching up (cronie's rule)."""


@dataclass
class _Entry:
    """One scheduled job: its schedule (to see whether a sync changed it), trigger, next due
    time and the due time last taken (aware)."""

    when: When
    trigger: Trigger
    next_run: dt.datetime | None
    previous: dt.datetime | None = None


@dataclass(frozen=True)
class Due:
    """A job found due by `peek_due`: its name, due time (naive local), and its entry then."""

    name: str
    at: dt.datetime
    job: _Entry = field(repr=False, compare=False)
    due: dt.datetime | None = field(default=None, repr=False, compare=False)


class JobScheduler:
    """Which job is due when. Holds no processes and no threads: the engine drives it."""

    def __init__(self, clock: Clock | None = None, site: Site | None = None) -> None:
        self.clock = clock or SystemClock()
        self.site = site or Site()
        self._entries: dict[str, _Entry] = {}
        self._earliest: dt.datetime | None = None
        self._earliest_known = False  # the earliest next run, kept until something changes
        self._lock = threading.RLock()  # the loop thread and a console's reload both use it

    def _now(self) -> dt.datetime:
        return aware(self.clock.now())

    def _locked(method):  # noqa: N805 - a decorator used in this class body only
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            with self._lock:
                return method(self, *args, **kwargs)

        return wrapper

    @_locked
    def sync(self, jobs: Iterable[Job], anchors: Mapping[str, dt.datetime] | None = None, site: Site | None = None,
             done_this_boot: Iterable[str] = ()) -> None:
        """Schedule the enabled jobs; a job whose schedule did not change keeps its next run.

        `anchors` (last start per job, naive local) put a new interval job back on the grid of
        its last run, so a restart does not push it a whole interval later. A new `site` (time
        zone, place, boot) reschedules every job. `done_this_boot`: boot jobs that already ran
        in this boot of the machine (from the state), so a daemon restart does not run them again.
        """
        self._changed()
        done = set(done_this_boot)
        if site is not None and site != self.site:
            self.site = site
            self._entries.clear()
        wanted: dict[str, When] = {job.name: job.when for job in jobs if job.enabled and job.schedule_type != "after"}
        for name in list(self._entries):
            if name not in wanted or self._entries[name].when != wanted[name]:
                del self._entries[name]
        now = self._now()
        for name, when in wanted.items():
            if name not in self._entries:
                anchor = (anchors or {}).get(name)
                self._entries[name] = self._build(name, when, now, aware(anchor) if anchor is not None else None, name in done)

    def _build(self, name: str, when: When, now: dt.datetime, anchor: dt.datetime | None = None, done: bool = False) -> _Entry:
        trigger, first = first_due(when, self.site, now, anchor, name, done)
        return _Entry(when, trigger, first)

    @_locked
    def trigger(self, name: str) -> Trigger | None:
        """The trigger of a scheduled job (for previews that explain a due time)."""
        entry = self._entries.get(name)
        return entry.trigger if entry else None

    @_locked
    def ran_this_boot(self) -> list[str]:
        """Boot jobs taken since this scheduler started: the engine notes the boot id in the state."""
        return [name for name, e in self._entries.items() if e.when.kind == "boot" and e.previous is not None]

    @_locked
    def next_run(self, name: str) -> dt.datetime | None:
        entry = self._entries.get(name)
        return naive_local(entry.next_run) if entry and entry.next_run is not None else None

    @_locked
    def published(self) -> dict[str, str]:
        """The next runs as the state file keeps them for other processes (`list`)."""
        return {name: naive_local(e.next_run).isoformat(timespec="seconds") for name, e in self._entries.items() if e.next_run is not None}

    def _changed(self) -> None:
        self._earliest_known = False

    def _earliest_run(self) -> dt.datetime | None:
        """The earliest next run: found once after a change, so an idle wake of the loop costs
        the same for a thousand jobs as for four."""
        if not self._earliest_known:
            self._earliest = min((e.next_run for e in self._entries.values() if e.next_run is not None), default=None)
            self._earliest_known = True
        return self._earliest

    @_locked
    def seconds_until_next(self) -> float | None:
        """Seconds until the earliest due time (≤ 0 when something is due), None if nothing is scheduled."""
        earliest = self._earliest_run()
        return None if earliest is None else (earliest - self._now()).total_seconds()

    @_locked
    def due(self) -> list[str]:
        """Names of the jobs due now, each once, and their next runs moved on."""
        taken = self.peek_due(self.clock.now())
        self.move_on(taken)
        return [d.name for d in taken]

    @_locked
    def peek_due(self, until: dt.datetime) -> list[Due]:
        """The jobs due at or before `until`, earliest first; nothing is moved on yet.

        The engine looks a little ahead (`until` = now + its lead) so it can prepare a run
        before its due instant, and starts a burst's first job before rescheduling the rest.
        """
        limit = aware(until)
        earliest = self._earliest_run()
        if earliest is None or earliest > limit:
            return []
        due = [Due(name, naive_local(e.next_run), e, e.next_run) for name, e in self._entries.items() if e.next_run is not None and e.next_run <= limit]
        due.sort(key=lambda d: d.due)
        return due

    @_locked
    def move_on(self, taken: Iterable[Due]) -> None:
        """Schedule the next runs of jobs taken from `peek_due`, as if run at their due times.

        A job changed or removed by a `sync` in between is left as the sync made it.
        """
        self._changed()
        now = self._now()
        for d in taken:
            entry = self._entries.get(d.name)
            if entry is None or entry is not d.job or entry.next_run != d.due:
                continue
            entry.previous = entry.next_run
            entry.next_run = entry.trigger.next_fire(entry.previous, max(entry.previous, now))

    @_locked
    def on_clock_jump(self, seconds: float) -> str:
        """Adjust next runs after the wall clock jumped by `seconds` (NTP fixing a Pi's clock).

        The rule (after cronie's): interval jobs count elapsed time, so their grid moves with
        the jump and they neither run early nor stall. Fixed-time jobs: after a jump of at most
        `RESET_JUMP` forward, times that were jumped over run once; backward, times already
        run are not run again (their next run stays where it was). A larger jump either way
        resets them to their next time on the new clock, with no catch-up. Returns the rule
        that applied, in words, for the log.
        """
        self._changed()
        shift = dt.timedelta(seconds=seconds)
        now = self._now()
        for name, entry in list(self._entries.items()):
            if isinstance(entry.trigger, Movable):
                entry.trigger = entry.trigger.moved(shift)
                entry.next_run = entry.next_run + shift if entry.next_run is not None else None
                entry.previous = entry.previous + shift if entry.previous is not None else None
            elif abs(seconds) > RESET_JUMP:
                self._entries[name] = self._build(name, entry.when, now, done=entry.when.kind == "boot" and entry.previous is not None)
        if abs(seconds) > RESET_JUMP:
            return "fixed-time jobs reset"
        return "missed fixed times run once" if seconds > 0 else "no fixed time runs twice"


@dataclass(frozen=True)
class Preview:
    """A job's next due times as a scheduler starting now would have them (aware), with what
    each comes from ("sunset 21:43:05 on 2026-06-20, +30m") and why days were skipped."""

    times: list[dt.datetime]
    notes: list[str]
    """One per due time: what it comes from, or ""."""
    skipped: list[str]
    """Days without a due time up to the last one shown ("no sunset from ... to ... at 69.6°N 18.9°E")."""


def preview(job: Job, clock: Clock | None = None, anchors: Mapping[str, dt.datetime] | None = None, count: int = 1,
            site: Site | None = None, done_this_boot: Iterable[str] = ()) -> Preview:
    """The next `count` due times of `job` if a scheduler started now; none for a disabled job."""
    from insect_console.triggers import explain, missing

    scheduler = JobScheduler(clock, site)
    scheduler.sync([job], anchors=anchors, done_this_boot=done_this_boot)
    entry = scheduler._entries.get(job.name)
    times: list[dt.datetime] = []
    when = entry.next_run if entry else None
    while when is not None and len(times) < count:
        times.append(when)
        when = entry.trigger.next_fire(when, when)
    if entry is None:
        return Preview([], [], [])
    zone = scheduler.site.zone
    start = scheduler._now().astimezone(zone).date()
    end = (times[-1] if times else scheduler._now() + dt.timedelta(days=400)).astimezone(zone).date()
    return Preview(times, [explain(entry.trigger, t) for t in times], missing(entry.trigger, start, end))


def upcoming(job: Job, clock: Clock | None = None, anchors: Mapping[str, dt.datetime] | None = None, count: int = 1,
             site: Site | None = None, done_this_boot: Iterable[str] = ()) -> list[dt.datetime]:
    """The next `count` due times of `job` (naive local) if a scheduler started now (for `list`
    without a daemon, and the form's preview); none for a disabled job."""
    return [naive_local(t) for t in preview(job, clock, anchors, count, site, done_this_boot).times]


def next_run_preview(job: Job, clock: Clock | None = None, anchors: Mapping[str, dt.datetime] | None = None,
                     site: Site | None = None, done_this_boot: Iterable[str] = ()) -> dt.datetime | None:
    """When `job` would next run if a scheduler started now."""
    runs = upcoming(job, clock, anchors, site=site, done_this_boot=done_this_boot)
    return runs[0] if runs else None


def due_times(job: Job, after: dt.datetime, until: dt.datetime, site: Site | None = None) -> Iterator[dt.datetime]:
    """Every due time of `job` in (`after`, `until`] (naive local), in order: what a station
    that was off from `after` to `until` missed. An interval job's grid is anchored at `after`."""
    trigger, _first = first_due(job.when, site or Site(), aware(after), aware(after), job.name)
    return (naive_local(t) for t in trigger_due_times(trigger, aware(after), aware(until)))


CATCH_UP_MOST = 100
"""The most missed due times `all` runs after one outage (the newest ones)."""


def catch_up_times(job: Job, trigger: Trigger | None, last_due: dt.datetime | None, now: dt.datetime, next_run: dt.datetime | None,
                   pending: Callable[[dt.datetime], bool]) -> list[dt.datetime]:
    """The missed due times of `job` (naive local) its catch-up policy runs: none (`skip`), the
    newest (`latest`), or each (`all`, oldest first), after `last_due` and no older than
    `catch_up_max_age`; never one the scheduler fires itself (at or after `next_run`) nor one
    already `pending`. A job that never ran has missed nothing; a boot job never catches up."""
    policy = job.policy.catch_up_for(job.schedule_type)
    if policy == "skip" or last_due is None or trigger is None or not job.enabled or job.schedule_type in ("after", "boot"):
        return []
    oldest = aware(now) - dt.timedelta(seconds=job.policy.catch_up_max_age_s)
    start = max(aware(last_due), oldest - dt.timedelta(microseconds=1))
    times = [naive_local(t) for t in trigger_due_times(trigger, start, aware(now)) if t >= oldest]
    times = [t for t in times if (next_run is None or aware(t) < aware(next_run)) and not pending(t)]
    return times[-1:] if policy == "latest" else times[-CATCH_UP_MOST:]
