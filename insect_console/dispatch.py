"""The part of the Engine that applies the run policies when a run is asked for (see
policies.py): a due time or a pending intent becomes a run on a worker, or waits (for its
conditions, for its own run in progress, for its group), or is recorded as skipped; after a run,
its retry or the runs that follow it are queued; at start and after a forward clock jump, the
due times missed while nothing scheduled are caught up.

A mixin of `Engine` (it uses the engine's config, clock, queue, run slots and pool), kept apart
so the rules read in one place and the engine itself stays its lifecycle, loop and one run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from insect_console import conditions, records
from insect_console.errors import JobNotFound
from insect_console.events import RunSkipped, RunWaiting
from insect_console.jobs import Job
from insect_console.notify import FAILURE_STATUSES
from insect_console.policies import RECHECK, followers
from insect_console.runqueue import Intent
from insect_console.runslots import RunSlot
from insect_console.scheduling import catch_up_times
from insect_console.state import record_skipped
from insect_console.textfmt import format_duration, parse_local
from insect_console.triggers import aware, naive_local

log = logging.getLogger("insect_console.engine")


class Dispatch:
    """Uses the Engine's config, settings, store, clock, scheduler, queue, _slots, _pool,
    _stopping, _wake, events, state and _skip()."""

    def _dispatch_due(self, now: dt.datetime) -> list[dt.datetime]:
        """Start the jobs due by `now` + self.START_LEAD: those not yet due are prepared now and
        spawned at their due instant; then the pending intents that are due (retries,
        catch-ups, chained runs, deferred runs to look at again). Returns the due times of jobs
        left for later because their previous run is still going (whether to skip them is
        decided when they are due).
        """
        until = naive_local(aware(now) + dt.timedelta(seconds=self.START_LEAD))  # as instants: fold kept
        taken, held, parked = [], [], []
        for d in self.scheduler.peek_due(until):
            if d.due > aware(now) and d.name in self._slots:
                held.append(d.at)
                continue
            self._offer(Intent(d.name, "schedule", d.at, d.at), parked)
            taken.append(d)
        self.scheduler.move_on(taken)  # after the dispatches: a burst's first job starts first
        for intent in self.queue.take(until):
            self._offer(intent, parked)
        self.queue.put(*parked)
        if taken:  # for `list` in other processes; before the due instant when a run is prepared ahead
            self.state.try_update(self._publish_next_runs, durable=False)  # for `list`: no flush to the card
        return held

    def _catch_up(self) -> None:
        """Queue the runs each job's catch-up policy wants for the due times missed while nothing
        scheduled (the station was off), from its last due time in the state."""
        now, state = self.clock.now(), self.state.read()
        for job in self.config.jobs:
            js = state["jobs"].get(job.name) or self._legacy_state.get(job.name, {})
            last = parse_local(js.get("last_due") or js.get("last_run"))
            times = catch_up_times(job, self.scheduler.trigger(job.name), last, now, self.scheduler.next_run(job.name),
                                   lambda t, n=job.name: (n, t) in self.queue)
            if times:
                log.info("%s: %d due time(s) missed since %s; catching up %s", job.name, len(times), f"{last:%Y-%m-%d %H:%M}",
                         ", ".join(f"{t:%m-%d %H:%M}" for t in times[:5]) + (" …" if len(times) > 5 else ""))
                self.queue.put(*(Intent(job.name, "catch-up", t, now) for t in times))
                self._wake.set()

    def _offer(self, intent: Intent, parked: list[Intent]) -> None:
        """Start `intent`'s run on a worker, or keep it waiting (into `parked`), or record why not."""
        try:
            job = self.config.job(intent.job_name)
        except JobNotFound:  # removed by a console's reload since it was found due
            return
        if not job.enabled:
            return
        slot, busy = self._claim(job, intent.trigger)
        if slot is not None:
            self._pool.submit(self._run_on_worker, job, slot, intent)
        elif busy is None:  # stopping: kept for the next start
            if intent.trigger != "schedule":
                parked.append(intent)
        elif intent.trigger == "schedule" and busy.job_name == job.name:  # recorded outside the lock: its fsyncs must not block status()
            self._skip(job, f"still running since {busy.start_time:%H:%M:%S}" if busy.start_time else "still running since ?")
        elif intent.trigger == "schedule" and any(i.waiting_since for i in self.queue.of(job.name)):
            self._skip(job, "an earlier run is still waiting for its conditions")
        else:
            why = "its previous run is still going" if busy.job_name == job.name else f"{busy.job_name} runs (group {job.policy.group})"
            self._wait(job, intent, why, job.policy.catch_up_max_age_s, parked, blocked=True)

    def _wait(self, job: Job, intent: Intent, reason: str, limit_s: float, parked: list[Intent], blocked: bool = False) -> None:
        """Keep `intent` waiting (looked at again every RECHECK s, and when a run ends), or skip
        it once it has waited `limit_s`."""
        now = self.clock.now()
        since = intent.waiting_since or now
        if (now - since).total_seconds() >= limit_s:
            self._skip(job, f"{reason} (waited {format_duration(limit_s)})", trigger=intent.trigger)
            return
        if intent.reason != reason:
            log.info("%s: waiting: %s", job.name, reason)
            self.events.emit(RunWaiting(job.name, reason))
        parked.append(dataclasses.replace(intent, waiting_since=since, reason=reason, blocked=blocked, not_before=now + dt.timedelta(seconds=RECHECK)))

    def _claim(self, job: Job, trigger: str) -> tuple[RunSlot | None, RunSlot | None]:
        """A new slot for a run of `job`, or the slot that keeps it from running (its own run in
        progress, or a run of its group); neither once stopping."""
        if self._stopping.is_set() or self._pool is None:
            return None, None
        return self._slots.claim(job.name, trigger, exclusive_with=self._group(job))

    def _skip(self, job: Job, reason: str, run_id: str | None = None, trigger: str = "schedule") -> None:
        log.warning("%s: not started: %s", job.name, reason)
        record = records.skipped(job.name, reason, at=dt.datetime.now(), trigger=trigger, run_id=run_id)
        self.history_log.append(record)
        self.state.try_update(lambda current: (record_skipped(current, record), self._publish_next_runs(current)))
        self.events.emit(RunSkipped(job.name, reason, run_id))

    def _resume_pending(self) -> None:
        """At start: the retries and waits a kill -9 or power cut left, then the due times missed."""
        resumed = self.queue.load()
        self.queue.drop({job.name for job in self.config.jobs if job.enabled})
        if resumed:
            log.info("resuming %d pending run(s): %s", len(resumed), ", ".join(f"{i.job_name} ({i.trigger})" for i in resumed))
        self._catch_up()

    def _group(self, job: Job) -> list[str]:
        """The other jobs of `job`'s group (at most one run of a group at a time)."""
        if not job.policy.group:
            return []
        return [j.name for j in self.config.jobs if j.policy.group == job.policy.group and j.name != job.name]

    def _unmet(self, job: Job, intent: Intent) -> str | None:
        """Why `job` can't start yet by its `require` table (manual runs are not held back)."""
        if not job.policy.require or intent.trigger == "manual" or self._stopping.is_set():
            return None
        return conditions.unmet(job.policy.require, cwd=str(self.store.resolve(job.cwd or ".")), env=job.env,
                                battery_command=self.settings.battery_command)

    def _retry_of(self, job: Job, slot: RunSlot, intent: Intent, status: str) -> tuple[Intent | None, bool]:
        """The retry of a failed run (none for a run the operator killed, a manual run, or one
        whose retry would start at or past the job's next due time), and whether the run counts
        in the failure streak: a failure counts once, after its last attempt; a kill never."""
        retry = None
        if status in FAILURE_STATUSES and not slot.killed and intent.trigger != "manual":
            when = job.policy.retry_at(intent.attempt, self.clock.now(), self.scheduler.next_run(job.name))
            retry = Intent(job.name, "retry", intent.due, when, intent.attempt + 1) if when is not None else None
        return retry, not slot.killed and retry is None

    def _after_run(self, job: Job, status: str, retry: Intent | None, counts: bool) -> None:
        """Queue the retry of a failed run, or the runs that follow a finished one."""
        if retry is not None:
            log.warning("%s: attempt %d of %d failed; the next at %s", job.name, retry.attempt - 1, job.policy.retries + 1, f"{retry.not_before:%H:%M:%S}")
            self.queue.put(retry)
        elif counts and status in ("success", *FAILURE_STATUSES):
            now = self.clock.now()
            self.queue.put(*(Intent(f.name, f"after:{job.name}", now, now) for f in followers(self.config.jobs, job.name, status)))
        if self.queue.next_time() is not None:
            self._wake.set()
