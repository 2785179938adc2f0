"""The part of the Engine that runs one job, from its start to its record: the per-job run lock
shared by every process on the config, the run's entry in the state before its process exists,
the spawn at the due instant, and the record, the state and the events when it ends (then its
retry or its followers, see dispatch.py).

A mixin of `Engine` (it uses the engine's config, settings, store, state, clock, events, history
writer and log keeper); `run-job` calls `execute()` on an engine that does not schedule.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from insect_console import notify, proctree, records, runoutput
from insect_console.errors import AlreadyRunning
from insect_console.events import OutputLines, RunFinished, RunStarted
from insect_console.fileio import locked
from insect_console.jobs import Job
from insect_console.runner import JobRun
from insect_console.runqueue import Intent
from insect_console.runslots import RunSlot
from insect_console.state import record_finished, running_entry
from insect_console.triggers import aware

log = logging.getLogger("insect_console.engine")


class _Stopped(Exception):
    """The engine stopped while a run waited for its due instant: it is not started."""


class Execution:
    """Uses the Engine's config, settings, store, state, clock, events, history_log, log_keeper,
    scheduler (for a retry's limit), _stopping and _retry_of()/_after_run()."""

    # -- one run, start to record -------------------------------------------

    def execute(self, job: Job, trigger: str = "manual", *, on_output: Callable[[str, list[str]], None] | None = None,
                slot: RunSlot | None = None, not_before: dt.datetime | None = None, intent: Intent | None = None) -> dict[str, Any]:
        """Run `job` to the end in this thread and record it. Used by workers and `run-job`.

        The per-job run lock is shared by every process on this config, so a job never runs
        twice at once, whoever started it. With `not_before`, everything but the spawn is done
        first, then the process starts at that instant (raises _Stopped if the engine stops).
        """
        lock_path = self.store.runtime_dir / "jobs" / f"{job.name}.lock"
        try:
            with locked(lock_path, blocking=False, upto=self.store.directory):
                intent = intent or Intent(job.name, trigger, self.clock.now(), self.clock.now())
                return self._execute_locked(job, intent, on_output, slot or RunSlot(job.name, records.new_run_id(), trigger), not_before)
        except BlockingIOError:
            raise AlreadyRunning(f"{job.name} is already running in another process") from None

    def _wait_until(self, when: dt.datetime) -> None:
        """Sleep until the wall clock reads `when` (a few ms at most: see START_LEAD)."""
        while (left := (aware(when) - aware(self.clock.now())).total_seconds()) > 0:  # instants: right in a repeated hour too
            if self.clock.wait(self._stopping, left):
                raise _Stopped

    def _execute_locked(self, job: Job, intent: Intent, on_output, slot: RunSlot, not_before: dt.datetime | None = None) -> dict[str, Any]:
        trigger = intent.trigger
        started = max(dt.datetime.now(), not_before) if not_before else dt.datetime.now()
        output_file = runoutput.output_path(self.log_dir, job.name, started, slot.run_id)
        slot.output_file = str(output_file)

        def emit_output(stream: str, lines: list[str]) -> None:
            if on_output is not None:
                on_output(stream, lines)
            self.events.emit(OutputLines(slot.run_id, job.name, stream, tuple(lines)))

        run = slot.run = JobRun.for_job(job, self.settings, run_id=slot.run_id, output_file=output_file, on_output=emit_output, base_dir=self.store.base_dir)
        entry = running_entry(job.name, trigger, records.iso(started), str(output_file), proctree.own_identity())  # planned start until on_start

        def write_entry(current: dict[str, Any]) -> None:
            current["running"][slot.run_id] = dict(entry)

        self.state.try_update(write_entry, durable=False)  # before the process exists (state.running_entry); no flush: see atomic_write

        def on_start(r: JobRun) -> None:  # light: the job's process is starting up beside it
            slot.start_time = dt.datetime.now()
            entry["start_time"] = records.iso(slot.start_time)
            self.events.emit(RunStarted(slot.run_id, job.name, trigger, entry["start_time"], r.pid, str(output_file)))
            log.info("%s: started (%s, pid %s)", job.name, trigger, r.pid)

        def on_settled(r: JobRun) -> None:  # SETTLE into a run that is still going: its pid too
            entry.update(pid=r.pid, create_time=r.create_time)
            self.state.try_update(write_entry, durable=False)

        if not_before is not None:
            try:
                self._wait_until(not_before)
            except _Stopped:
                run.discard()
                self.state.try_update(lambda current: current["running"].pop(slot.run_id, None), durable=False)
                raise
        outcome = run.execute(on_start=on_start, on_settled=on_settled)
        record = records.finished(
            job.name, start=outcome.start, end=outcome.end, status=outcome.status, output=outcome.output, error=outcome.error,
            exit_code=outcome.exit_code, duration_s=outcome.duration_s, trigger=trigger,
            output_file=str(output_file) if output_file.exists() else None, run_id=slot.run_id,
            due_time=records.iso(intent.due) if trigger != "manual" else None, attempt=intent.attempt,
        )
        self._finish(job, slot, record, intent)
        return record

    def _finish(self, job: Job, slot: RunSlot, record: dict[str, Any], intent: Intent) -> None:
        """Record a run; then its retry (a failure with attempts left, never past the job's next
        due time), or the runs that follow it. A failure counts in the streak once, after its
        last attempt; a run the operator killed is not retried and does not count."""
        self.history_log.append(record)
        status, threshold = record["status"], self.settings.failure_threshold
        retry, counts = self._retry_of(job, slot, intent, status)
        last_due = intent.due if intent.trigger in ("schedule", "catch-up", "retry") else None

        def apply(current: dict[str, Any]):
            previous = current["jobs"].get(job.name, {}).get("error_count", 0)
            record_finished(current, slot.run_id, record, notify.next_streak(previous, status) if counts else previous, last_due)
            return notify.notification_for(job.name, previous, current["jobs"][job.name]["error_count"], threshold, record) if counts else None

        note = self.state.try_update(apply)
        self._after_run(job, status, retry, counts)
        self.log_keeper.count_output(record.get("output_file"), self.clock.now().date())
        level = logging.INFO if record["status"] == "success" else logging.WARNING
        log.log(level, "%s: %s in %.1f s%s", job.name, record["status"], record.get("duration_s") or 0, f" ({record['error']})" if record.get("error") else "")
        self.events.emit(RunFinished(slot.run_id, job.name, record))
        if note is not None:
            notify.deliver(note, self.settings.notify_command, cwd=str(self.store.base_dir))
            self.events.emit(note)

