"""Due times, computed by a private `schedule.Scheduler` on an injectable clock.

The engine never polls in a one-second loop: it asks `seconds_until_next()`, sleeps until a
moment before that (or until woken), takes the jobs due by then with `peek_due()`, starts them,
then moves them on with `move_on()`.

Two corrections to `schedule`'s own behaviour:
- interval jobs keep their grid: the next run is the previous due time plus the interval (not
  "now" plus the interval), so lateness never accumulates; missed periods are skipped, not
  caught up one by one;
- `"sunday"` means Sunday 00:00, not the time of day the daemon happened to start.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import schedule

from insect_console.clock import Clock, SystemClock, use_clock
from insect_console.jobs import Job, When

log = logging.getLogger(__name__)


RESET_JUMP = 3 * 3600
"""A wall-clock jump larger than this resets fixed-time jobs instead of catching up (cronie's rule)."""


class GridJob(schedule.Job):
    """A `schedule.Job` whose interval runs stay on the grid of their first due time."""

    def _schedule_next_run(self) -> None:
        if self.at_time is None and self.start_day is None and self.next_run is not None:
            period = dt.timedelta(**{self.unit: self.interval})
            now = schedule.datetime.datetime.now()  # the injected clock, see clock.use_clock
            self.next_run = _next_on_grid(self.next_run, period, now)
            return
        super()._schedule_next_run()


def _next_on_grid(anchor: dt.datetime, period: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """The first `anchor + k * period` after `now` (k ≥ 1); an anchor in the future is used as is."""
    if anchor > now:
        return min(anchor, now + period)
    return anchor + period * ((now - anchor) // period + 1)


@dataclass(frozen=True)
class Due:
    """A job found due by `peek_due`: its name, due time, and the `schedule` job to move on."""

    name: str
    at: dt.datetime
    job: schedule.Job = field(repr=False, compare=False)


class _FixedNow:
    """A clock stopped at one instant: a job is moved on as if run exactly when due.

    Without it, a fixed-time job taken 20 ms early would be scheduled for the same time again.
    """

    def __init__(self, at: dt.datetime) -> None:
        self._at = at

    def now(self) -> dt.datetime:
        return self._at


def _nothing() -> None:
    pass


class _PrivateScheduler(schedule.Scheduler):
    def every(self, interval: int = 1) -> GridJob:
        return GridJob(interval, self)


class JobScheduler:
    """Which job is due when. Holds no processes and no threads: the engine drives it."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._scheduler = _PrivateScheduler()
        self._entries: dict[str, tuple[When, GridJob]] = {}
        self._lock = threading.RLock()  # the loop thread and a console's reload both use it

    def _ctx(self):
        return use_clock(self.clock)

    def _locked(method):  # noqa: N805 - a decorator used in this class body only
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            with self._lock:
                return method(self, *args, **kwargs)

        return wrapper

    @_locked
    def sync(self, jobs: Iterable[Job], anchors: Mapping[str, dt.datetime] | None = None) -> None:
        """Schedule the enabled jobs; a job whose schedule did not change keeps its next run.

        `anchors` (last start per job) put a new interval job back on the grid of its last run,
        so a restart does not push it a whole interval later: next = anchor + k * interval.
        """
        wanted: dict[str, When] = {job.name: job.when for job in jobs if job.enabled and job.schedule_type != "after"}
        with self._ctx():
            for name in list(self._entries):
                if name not in wanted or self._entries[name][0] != wanted[name]:
                    self._scheduler.cancel_job(self._entries.pop(name)[1])
            for name, when in wanted.items():
                if name not in self._entries:
                    job = self._build(name, when)
                    anchor = (anchors or {}).get(name)
                    if when.kind == "interval" and anchor is not None:
                        job.next_run = _next_on_grid(anchor, dt.timedelta(seconds=when.seconds or 1), self.clock.now())
                    self._entries[name] = (when, job)

    def _build(self, name: str, when: When) -> GridJob:
        if when.kind == "interval":
            job = self._scheduler.every(when.seconds).seconds
        elif when.kind == "daily":
            job = self._scheduler.every().day.at(when.at)
        else:
            job = getattr(self._scheduler.every(), when.weekday).at(when.at)
        return job.do(_nothing).tag(name)  # the engine runs jobs; `schedule` only keeps time

    @_locked
    def next_run(self, name: str) -> dt.datetime | None:
        entry = self._entries.get(name)
        return entry[1].next_run if entry else None

    @_locked
    def published(self) -> dict[str, str]:
        """The next runs as the state file keeps them for other processes (`list`)."""
        return {name: job.next_run.isoformat(timespec="seconds") for name, (_, job) in self._entries.items() if job.next_run is not None}

    @_locked
    def seconds_until_next(self) -> float | None:
        """Seconds until the earliest due time (≤ 0 when something is due), None if nothing is scheduled."""
        runs = [job.next_run for _, job in self._entries.values() if job.next_run is not None]
        if not runs:
            return None
        return (min(runs) - self.clock.now()).total_seconds()

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
        due = [Due(name, job.next_run, job) for name, (_, job) in self._entries.items() if job.next_run is not None and job.next_run <= until]
        due.sort(key=lambda d: d.at)
        return due

    @_locked
    def move_on(self, taken: Iterable[Due]) -> None:
        """Schedule the next runs of jobs taken from `peek_due`, as if run at their due times.

        A job changed or removed by a `sync` in between is left as the sync made it.
        """
        for d in taken:
            entry = self._entries.get(d.name)
            if entry is None or entry[1] is not d.job or d.job.next_run != d.at:
                continue
            with use_clock(_FixedNow(max(d.at, self.clock.now()))):
                d.job.run()  # schedule's own bookkeeping: last_run, then _schedule_next_run()

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
        shift = dt.timedelta(seconds=seconds)
        with self._ctx():
            for name, (when, job) in list(self._entries.items()):
                if when.kind == "interval":
                    if job.next_run is not None:
                        job.next_run += shift
                elif abs(seconds) > RESET_JUMP:
                    self._scheduler.cancel_job(job)
                    self._entries[name] = (when, self._build(name, when))
        if abs(seconds) > RESET_JUMP:
            return "fixed-time jobs reset"
        return "missed fixed times run once" if seconds > 0 else "no fixed time runs twice"


def upcoming(job: Job, clock: Clock | None = None, anchors: Mapping[str, dt.datetime] | None = None, count: int = 1) -> list[dt.datetime]:
    """The next `count` due times of `job` if a scheduler started now (for `list` without a
    daemon, and the form's preview); none for a disabled job."""
    preview = JobScheduler(clock)
    preview.sync([job], anchors=anchors)
    out: list[dt.datetime] = []
    while len(out) < count and (when := preview.next_run(job.name)) is not None:
        out.append(when)
        preview.move_on(preview.peek_due(when))
    return out


def next_run_preview(job: Job, clock: Clock | None = None, anchors: Mapping[str, dt.datetime] | None = None) -> dt.datetime | None:
    """When `job` would next run if a scheduler started now."""
    runs = upcoming(job, clock, anchors)
    return runs[0] if runs else None


def due_times(job: Job, after: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
    """Every due time of `job` in (`after`, `until`], in order: what a station that was off
    from `after` to `until` missed. An interval job's grid is anchored at `after`."""
    from insect_console.clock import ManualClock

    clock = ManualClock(after)
    steps = JobScheduler(clock)
    steps.sync([job.replace(enabled=True)], anchors={job.name: after})
    while (when := steps.next_run(job.name)) is not None and when <= until:
        if when > after:
            yield when
        steps.move_on(steps.peek_due(when))
        clock.set(when)


CATCH_UP_MOST = 100
"""The most missed due times `all` runs after one outage (the newest ones)."""


def catch_up_times(job: Job, last_due: dt.datetime | None, now: dt.datetime, next_run: dt.datetime | None,
                   pending: Callable[[dt.datetime], bool]) -> list[dt.datetime]:
    """The missed due times of `job` its catch-up policy runs: none (`skip`), the newest
    (`latest`), or each (`all`, oldest first), after `last_due` and no older than
    `catch_up_max_age`; never one the scheduler fires itself (at or after `next_run`) nor one
    already `pending`. A job that never ran has missed nothing."""
    policy = job.policy.catch_up_for(job.schedule_type)
    if policy == "skip" or last_due is None or not job.enabled or job.schedule_type == "after":
        return []
    oldest = now - dt.timedelta(seconds=job.policy.catch_up_max_age_s)
    times = [t for t in due_times(job, max(last_due, oldest - dt.timedelta(microseconds=1)), now)
             if t >= oldest and (next_run is None or t < next_run) and not pending(t)]
    return times[-1:] if policy == "latest" else times[-CATCH_UP_MOST:]
