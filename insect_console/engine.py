"""The engine: config + state + scheduler + runs + history + notifications, in one object.

The daemon, the console and the CLI all drive this same class. Its loop only decides what is
due and sleeps until the next due time; runs happen on a bounded pool of worker threads.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from insect_console import history, notify, proctree, records, retention
from insect_console.clock import Clock, SystemClock
from insect_console.config import Config, ConfigStore, DEFAULT_CONFIG_PATH, Settings
from insect_console.control import ControlServer, socket_path
from insect_console.errors import AlreadyRunning, ConfigError, SchedulerRunning
from insect_console.events import (
    ClockJumped,
    ConfigReloaded,
    EventBus,
    Listener,
    OutputLines,
    RunFinished,
    RunSkipped,
    RunStarted,
)
from insect_console.fileio import Outage, ensure_private_dir, locked
from insect_console.jobs import Job
from insect_console.runner import JobRun, RunOutcome
from insect_console.scheduling import JobScheduler
from insect_console.state import StateStore
from insect_console.watch import FileWatcher

log = logging.getLogger("insect_console.engine")

MAX_SLEEP = 30.0
"""Longest single sleep of the loop, so a wall-clock change is noticed within this time."""
START_LEAD = 0.025
"""The loop wakes this long before a due time: the run is prepared (locks, paths, environment)
ahead, and only `Popen` is left for the due instant."""
CLOCK_JUMP = 5.0
"""A difference between wall-clock and monotonic time larger than this counts as a clock jump."""


class _Stopped(Exception):
    """The engine stopped while a run waited for its due instant: it is not started."""


@dataclass
class ActiveRun:
    job_name: str
    run_id: str
    trigger: str
    run: JobRun | None = None
    start_time: dt.datetime | None = None
    output_file: str | None = None


class ConfigChanges:
    """The console's forms change the config through these: the file is written under its lock,
    then `reload()` applies it at once. Shared by `Engine` and `RemoteEngine`."""

    store: ConfigStore

    def reload(self) -> None:
        raise NotImplementedError

    def add_job(self, job: Job) -> None:
        self.store.add_job(job)
        self.reload()

    def replace_job(self, name: str, job: Job) -> None:
        """Change a job in place; a running job keeps running, the change applies to its next run."""
        self.store.replace_job(name, job)
        self.reload()

    def remove_job(self, name: str) -> None:
        self.store.remove_job(name)
        self.reload()

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.store.set_enabled(name, enabled)
        self.reload()


def status_entry(job: Job, js: dict[str, Any], next_run: dt.datetime | None, run: dict[str, Any] | None) -> dict[str, Any]:
    """One job's status: the spec's `get_job_status` fields plus running details."""
    return {
        "name": job.name,
        "enabled": job.enabled,
        "schedule_type": job.schedule_type,
        "schedule_time": job.schedule_time,
        "last_run": js.get("last_run"),
        "last_status": js.get("last_status"),
        "error_count": js.get("error_count", 0),
        "next_run": next_run.isoformat(timespec="seconds") if next_run else None,
        "running": run is not None,
        "running_since": run.get("start_time") if run else None,
        "running_pid": run.get("pid") if run else None,
    }


class Engine(ConfigChanges):
    """Schedules and runs the jobs of one config file."""

    heartbeat: Callable[[], None] | None = None
    """Called by the loop on every wake, before dispatching (the daemon's systemd watchdog);
    an exception is logged and never stops the loop."""
    max_sleep: float = MAX_SLEEP
    """The loop's longest sleep (the daemon sets half the watchdog interval)."""

    def __init__(self, config_path: Path | str = DEFAULT_CONFIG_PATH, *, base_dir: Path | str | None = None, clock: Clock | None = None) -> None:
        self.store = ConfigStore(config_path, base_dir)
        self.config: Config = self.store.load(create=True)
        self.state = StateStore(self.store.state_path, self.store.runtime_dir / "state.lock")
        self.clock = clock or SystemClock()
        self.scheduler = JobScheduler(self.clock)
        self.events = EventBus()
        self._active: dict[str, ActiveRun] = {}
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reload_requested = False
        self._stop_called = False
        self._pool: ThreadPoolExecutor | None = None
        self._loop_thread: threading.Thread | None = None
        self._scheduler_lock: int | None = None
        self._control: ControlServer | None = None
        self._watcher: FileWatcher | None = None
        self._config_mtime = self._mtime()
        self._history_outage = Outage()
        self._state_outage = Outage()
        self._identity: tuple[int, float | None] = (0, None)
        self._output_bytes = 0  # run output on disk, as of the last prune plus runs since
        self._pruning = False
        self._legacy_state = self.store.legacy_state()  # run state inside a spec-format JSON config

    # -- properties -------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def log_dir(self) -> Path:
        return self.store.resolve(self.settings.log_dir)

    @property
    def running(self) -> bool:
        return self._loop_thread is not None and self._loop_thread.is_alive()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.events.subscribe(listener)

    # -- lifecycle (scheduler mode) ----------------------------------------

    def start(self) -> None:
        """Take the scheduler lock, recover runs cut off by a crash, and start scheduling."""
        self._take_scheduler_lock()
        self._seed_legacy_state()
        self.recover_interrupted()
        since = (self.clock.now(), self.clock.monotonic())  # a jump from here on is one the loop sees
        self.scheduler.sync(self.config.jobs, anchors=self._last_runs())
        self._update_state(self._publish_next_runs)
        self._pool = ThreadPoolExecutor(max_workers=self.settings.max_parallel, thread_name_prefix="run")
        self._watcher = FileWatcher(self.store.path.parent, {self.store.path.name}, lambda _name: self.request_reload())
        self._watching = self._watcher.start()
        if not self._watching:
            log.info("inotify unavailable: checking the config for changes every second")
        self._pruned_on: dt.date | None = None
        self._loop_thread = threading.Thread(target=self._loop, args=since, name="scheduler", daemon=True)
        self._loop_thread.start()
        self._control = ControlServer(self, socket_path(self.store.runtime_dir))
        try:
            self._control.start()
        except OSError as e:
            log.error("no control socket (%s): consoles and run-job can't attach", e.strerror)
            self._control = None
        log.info("scheduler started: %d jobs (%d enabled), config %s", len(self.config.jobs), sum(j.enabled for j in self.config.jobs), self.store.display_path)

    def _take_scheduler_lock(self) -> None:
        path = self.store.runtime_dir / "scheduler.lock"
        ensure_private_dir(self.store.runtime_dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = scheduler_pid(self.store)
            os.close(fd)
            raise SchedulerRunning(self.store.display_path, pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._scheduler_lock = fd

    def stop(self, grace: float | None = None) -> None:
        """Stop starting runs, let running ones finish within `grace`, then end their trees.

        Safe to call more than once, from any thread: only the first call does the work.
        """
        with self._lock:
            if self._stop_called:
                return
            self._stop_called = True
        self._stopping.set()
        self._wake.set()
        if self._loop_thread is not None:
            self._loop_thread.join()
        grace = self.settings.shutdown_grace if grace is None else grace
        deadline = time.monotonic() + grace
        with self._idle:
            while self._active and time.monotonic() < deadline:
                self._idle.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            left = list(self._active.values())
        for active in left:
            if active.run is not None:
                log.warning("%s: still running after the %s s shutdown grace; ending it", active.job_name, grace)
                active.run.kill("interrupted", f"stopped at shutdown (still running after {grace:g} s)")
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._active.clear()
        if self._watcher is not None:
            self._watcher.stop()
        if self._control is not None:
            self._control.stop()
            self._control = None
        if self._scheduler_lock is not None:
            os.close(self._scheduler_lock)
            self._scheduler_lock = None
        log.info("scheduler stopped")

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop ends and `wait_stopped()` returns."""
        self._stopping.set()
        self._wake.set()

    def wait_stopped(self) -> None:
        while not self._stopping.wait(3600):
            pass

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------

    def _loop(self, last_wall: dt.datetime, last_mono: float) -> None:
        """Dispatch due jobs until stopped; the clocks as read when next runs were computed start the jump check."""
        while not self._stopping.is_set():
            self._wake.clear()
            if self.heartbeat is not None:
                try:
                    self.heartbeat()
                except Exception:
                    log.exception("heartbeat failed")
            wall, mono = self.clock.now(), self.clock.monotonic()
            jump = (wall - last_wall).total_seconds() - (mono - last_mono)
            last_wall, last_mono = wall, mono
            if abs(jump) > CLOCK_JUMP:
                self._on_clock_jump(jump)
            if self._pruned_on != wall.date():
                self._pruned_on = wall.date()
                threading.Thread(target=self.prune_logs, name="prune", daemon=True).start()
            if self._reload_requested or (not self._watching and self._mtime() != self._config_mtime):
                self.reload()
            held: list[dt.datetime] = []
            try:
                held = self._dispatch_due(wall)
            except Exception:
                log.exception("scheduler loop error")
            if held:  # due within the lead but still running: look again exactly when due
                wait = (min(held) - self.clock.now()).total_seconds()
            else:
                wait = self.scheduler.seconds_until_next()
                wait = None if wait is None else wait - START_LEAD
            wait = self.max_sleep if wait is None else min(max(wait, 0.0), self.max_sleep)
            if not self._watching:
                wait = min(wait, 1.0)
            self.clock.wait(self._wake, wait)

    def _dispatch_due(self, now: dt.datetime) -> list[dt.datetime]:
        """Start the jobs due by `now` + START_LEAD: those not yet due are prepared now and
        spawned at their due instant. Returns the due times of jobs left for later because
        their previous run is still going (whether to skip them is decided when they are due).
        """
        due = self.scheduler.peek_due(now + dt.timedelta(seconds=START_LEAD))
        taken, held = [], []
        for d in due:
            if d.at > now and d.name in self._active:
                held.append(d.at)
                continue
            self._dispatch(d.name, "schedule", not_before=d.at)
            taken.append(d)
        self.scheduler.move_on(taken)  # after the dispatches: a burst's first job starts first
        if taken:  # for `list` in other processes; before the due instant when a run is prepared ahead
            self._update_state(self._publish_next_runs)
        return held

    def _count_output(self, output_file: str | None) -> None:
        """Keep a running total of run output; past `output_max_mb`, prune at once, not at midnight."""
        try:
            size = os.path.getsize(output_file) if output_file else 0
        except OSError:
            size = 0
        with self._lock:
            self._output_bytes += size
            over = self._output_bytes > self.settings.output_max_mb * 1024 * 1024 and not self._pruning
            if over:
                self._pruning = True
        if over:
            threading.Thread(target=self.prune_logs, name="prune", daemon=True).start()

    def prune_logs(self) -> None:
        """Apply the retention settings to the log directory (runs in progress are kept)."""
        protected = {a.output_file for a in self.active_runs().values() if a.output_file}
        protected |= {e.get("output_file") for e in self.state.read()["running"].values() if e.get("output_file")}
        s = self.settings
        try:
            report = retention.prune(
                self.log_dir,
                today=self.clock.now().date(),
                history_keep_days=s.history_keep_days,
                output_keep_days=s.output_keep_days,
                output_max_bytes=s.output_max_mb * 1024 * 1024,
                protected=protected,
            )
            with self._lock:
                self._output_bytes = report.output_bytes_left
        except Exception:
            log.exception("pruning the logs failed")
        finally:
            self._pruning = False

    def _on_clock_jump(self, seconds: float) -> None:
        rule = "fixed-time jobs reset" if abs(seconds) > 3 * 3600 else ("missed fixed times run once" if seconds > 0 else "no fixed time runs twice")
        log.warning("wall clock jumped %+.1f s; interval jobs keep their spacing, %s", seconds, rule)
        self.scheduler.on_clock_jump(seconds)
        if self.running:
            self._update_state(self._publish_next_runs)
        self.events.emit(ClockJumped(seconds))

    def _mtime(self) -> int | None:
        try:
            return self.store.path.stat().st_mtime_ns
        except OSError:
            return None

    def reload(self) -> None:
        """Read the config again; a broken file is reported and the old jobs are kept."""
        self._reload_requested = False
        self._config_mtime = self._mtime()
        try:
            config = self.store.load(create=False)
        except ConfigError as e:
            log.error("config not reloaded, keeping the previous jobs: %s", e)
            self.events.emit(ConfigReloaded(error=str(e)))
            return
        if config != self.config:
            self.config = config
            self.scheduler.sync(config.jobs)
            self._wake.set()  # a new or moved job may be due before the loop's current sleep ends
            if self.running:
                self._update_state(self._publish_next_runs)
            log.info("config reloaded: %d jobs", len(config.jobs))
        self.events.emit(ConfigReloaded())

    def _dispatch(self, name: str, trigger: str, not_before: dt.datetime | None = None) -> ActiveRun | None:
        try:
            job = self.config.job(name)
        except Exception:
            return None
        with self._lock:
            if self._stopping.is_set() or self._pool is None:
                return None
            busy = self._active.get(name)
            if busy is None:
                active = ActiveRun(job_name=name, run_id=new_run_id(), trigger=trigger)
                self._active[name] = active
        if busy is not None:  # recorded outside the lock: the record's fsyncs must not block status()
            self._skip(job, f"still running since {_hhmmss(busy.start_time)}")
            return None
        self._pool.submit(self._run_on_worker, job, active, not_before)
        return active

    def _run_on_worker(self, job: Job, active: ActiveRun, not_before: dt.datetime | None = None) -> None:
        try:
            if not self._stopping.is_set():
                self.execute(job, active.trigger, active=active, not_before=not_before)
        except _Stopped:
            pass
        except AlreadyRunning as e:
            self._skip(job, str(e), active.run_id, active.trigger)
        except Exception:
            log.exception("%s: run failed", job.name)
        finally:
            with self._idle:
                if self._active.get(job.name) is active:
                    del self._active[job.name]
                self._idle.notify_all()

    def _skip(self, job: Job, reason: str, run_id: str | None = None, trigger: str = "schedule") -> None:
        log.warning("%s: not started: %s", job.name, reason)
        record = records.skipped(job.name, reason, at=dt.datetime.now(), trigger=trigger, run_id=run_id)
        self._append_history(record)

        def count(state: dict[str, Any]) -> None:
            js = state["jobs"].setdefault(job.name, {})
            js["skipped"] = js.get("skipped", 0) + 1
            js["last_skipped"] = record["start_time"]
            self._publish_next_runs(state)

        self._update_state(count)
        self.events.emit(RunSkipped(job.name, reason, run_id))

    # -- commands -----------------------------------------------------------

    def run_now(self, name: str) -> ActiveRun:
        """Start `name` now on a worker (scheduler mode). Raises AlreadyRunning if it runs."""
        job = self.config.job(name)
        with self._lock:
            if name in self._active:
                raise AlreadyRunning(f"{name} is already running")
            if self._pool is None or self._stopping.is_set():
                raise AlreadyRunning("the scheduler is not running")
            active = ActiveRun(job_name=name, run_id=new_run_id(), trigger="manual")
            self._active[name] = active
        self._pool.submit(self._run_on_worker, job, active)
        return active

    def kill(self, name: str) -> bool:
        """End the running run of `name` (its whole process tree). False if it is not running here."""
        with self._lock:
            active = self._active.get(name)
        if active is None or active.run is None:
            return False
        active.run.kill("error", "killed on request")
        return True

    def active_runs(self) -> dict[str, ActiveRun]:
        with self._lock:
            return dict(self._active)

    # -- one run, start to record -------------------------------------------

    def execute(self, job: Job, trigger: str = "manual", *, on_output: Callable[[str, list[str]], None] | None = None, active: ActiveRun | None = None, not_before: dt.datetime | None = None) -> dict[str, Any]:
        """Run `job` to the end in this thread and record it. Used by workers and `run-job`.

        The per-job run lock is shared by every process on this config, so a job never runs
        twice at once, whoever started it. With `not_before`, everything but the spawn is done
        first, then the process starts at that instant (raises _Stopped if the engine stops).
        """
        lock_path = self.store.runtime_dir / "jobs" / f"{job.name}.lock"
        try:
            with locked(lock_path, blocking=False):
                return self._execute_locked(job, trigger, on_output, active or ActiveRun(job.name, new_run_id(), trigger), not_before)
        except BlockingIOError:
            raise AlreadyRunning(f"{job.name} is already running in another process") from None

    def _wait_until(self, when: dt.datetime) -> None:
        """Sleep until the wall clock reads `when` (a few ms at most: see START_LEAD)."""
        while (left := (when - self.clock.now()).total_seconds()) > 0:
            if self.clock.wait(self._stopping, left):
                raise _Stopped

    def _execute_locked(self, job: Job, trigger: str, on_output, active: ActiveRun, not_before: dt.datetime | None = None) -> dict[str, Any]:
        settings = self.settings
        started = max(dt.datetime.now(), not_before) if not_before else dt.datetime.now()
        output_file = self.log_dir / "output" / f"{started:%Y%m%d}" / f"{job.name}-{started:%H%M%S}-{active.run_id[-6:]}.log"
        active.output_file = str(output_file)

        def emit_output(stream: str, lines: list[str]) -> None:
            if on_output is not None:
                on_output(stream, lines)
            self.events.emit(OutputLines(active.run_id, job.name, stream, tuple(lines)))

        run = JobRun(
            job,
            run_id=active.run_id,
            timeout=job.timeout or settings.default_timeout,
            kill_grace=settings.kill_grace,
            output_file=output_file,
            tail_bytes=settings.output_tail_bytes,
            output_cap=settings.output_max_run_mb * 1024 * 1024,
            on_output=emit_output,
            base_dir=self.store.base_dir,
        )
        active.run = run

        entry = {
            "job_name": job.name,
            "pid": None,
            "create_time": None,
            "owner_pid": os.getpid(),
            "owner_create_time": self._own_identity(),
            "start_time": started.astimezone().isoformat(timespec="milliseconds"),  # the planned start, until on_start
            "output_file": str(output_file),
            "trigger": trigger,
        }

        def write_entry(state: dict[str, Any]) -> None:
            state["running"][active.run_id] = dict(entry)

        # In the state before the process exists: a crash from here on leaves an entry, and
        # recovery finds the run's processes by their marker even without a pid.
        self._update_state(write_entry)

        def on_start(r: JobRun) -> None:  # light: the job's process is starting up beside it
            active.start_time = dt.datetime.now()
            entry["start_time"] = active.start_time.astimezone().isoformat(timespec="milliseconds")
            self.events.emit(RunStarted(active.run_id, job.name, trigger, entry["start_time"], r.pid, str(output_file)))
            log.info("%s: started (%s, pid %s)", job.name, trigger, r.pid)

        def on_settled(r: JobRun) -> None:  # SETTLE into a run that is still going: its pid too
            entry.update(pid=r.pid, create_time=r.create_time)
            self._update_state(write_entry)

        if not_before is not None:
            try:
                self._wait_until(not_before)
            except _Stopped:
                run.discard()
                self._update_state(lambda state: state["running"].pop(active.run_id, None))
                raise
        outcome = run.execute(on_start=on_start, on_settled=on_settled)
        record = records.finished(
            job.name, start=outcome.start, end=outcome.end, status=outcome.status, output=outcome.output, error=outcome.error,
            exit_code=outcome.exit_code, duration_s=outcome.duration_s, trigger=trigger,
            output_file=str(output_file) if output_file.exists() else None, run_id=active.run_id,
        )
        self._finish(job, active.run_id, record)
        return record

    def _finish(self, job: Job, run_id: str, record: dict[str, Any]) -> None:
        self._append_history(record)
        threshold = self.settings.failure_threshold

        def apply(state: dict[str, Any]):
            state["running"].pop(run_id, None)
            js = state["jobs"].setdefault(job.name, {})
            previous = js.get("error_count", 0)
            js.update(
                last_run=record["start_time"],
                last_status=record["status"],
                error_count=notify.next_streak(previous, record["status"]),
                last_duration_s=record.get("duration_s"),
                last_output_file=record.get("output_file"),
            )
            return notify.notification_for(job.name, previous, js["error_count"], threshold, record)

        note = self._update_state(apply)
        self._count_output(record.get("output_file"))
        level = logging.INFO if record["status"] == "success" else logging.WARNING
        log.log(level, "%s: %s in %.1f s%s", job.name, record["status"], record.get("duration_s") or 0, f" ({record['error']})" if record.get("error") else "")
        self.events.emit(RunFinished(run_id, job.name, record))
        if note is not None:
            notify.deliver(note, self.settings.notify_command, cwd=str(self.store.base_dir))
            self.events.emit(note)

    def _append_history(self, record: dict[str, Any]) -> None:
        try:
            history.append_record(self.log_dir, record)
        except OSError as e:
            if self._history_outage.failed():
                log.error("can't write history to %s: %s (runs go on; records are lost until this is fixed)", self.log_dir, e.strerror)
            return
        if self._history_outage.worked():
            log.warning("history writes work again")

    def _own_identity(self) -> float | None:
        """This process's create time (for run entries), read once per process."""
        if self._identity[0] != os.getpid():
            self._identity = (os.getpid(), proctree.process_identity(os.getpid()))
        return self._identity[1]

    def _update_state(self, change):
        """Change the state file; a failure (disk full) is logged once per outage, runs go on."""
        try:
            result = self.state.update(change)
        except OSError as e:
            if self._state_outage.failed():
                log.error("can't write state file %s: %s (runs go on; state is not saved until this is fixed)", self.state.path, e.strerror)
            return None
        if self._state_outage.worked():
            log.warning("state file writes work again")
        return result

    # -- crash recovery -------------------------------------------------------

    def recover_interrupted(self) -> list[dict[str, Any]]:
        """Record runs whose owner died mid-run as `interrupted`, and end their leftovers."""
        stale: list[tuple[str, dict[str, Any]]] = []
        if not any(
            not proctree.is_same_process(e.get("owner_pid"), e.get("owner_create_time"))
            for e in self.state.read()["running"].values()
        ):
            return []  # the usual case: nothing to write

        def take(state: dict[str, Any]) -> None:
            for run_id, entry in list(state["running"].items()):
                if not proctree.is_same_process(entry.get("owner_pid"), entry.get("owner_create_time")):
                    stale.append((run_id, state["running"].pop(run_id)))

        self._update_state(take)
        found = []
        for run_id, entry in stale:
            survivors = proctree.run_processes(run_id, entry.get("pid"), entry.get("create_time"))
            if survivors:
                log.warning("%s: ending %d leftover process(es) of interrupted run %s", entry.get("job_name"), len(survivors), run_id)
                proctree.end_run(run_id, entry.get("pid"), self.settings.kill_grace, entry.get("create_time"))
            output_file = entry.get("output_file")
            record = records.interrupted(
                entry, run_id, at=dt.datetime.now(), output=_tail_of(output_file, self.settings.output_tail_bytes),
                output_file=output_file if output_file and os.path.exists(output_file) else None,
            )
            self._append_history(record)

            def mark(state: dict[str, Any], name=record["job_name"], when=record["start_time"]) -> None:
                js = state["jobs"].setdefault(name, {})
                js.update(last_run=when, last_status="interrupted")

            self._update_state(mark)
            log.warning("%s: run %s recorded as interrupted", record["job_name"], run_id)
            found.append(record)
        return found

    def _publish_next_runs(self, state: dict[str, Any]) -> None:
        """Put the scheduler's next runs in the state, for `list` and other processes to show."""
        state["next_runs"] = {
            job.name: when.isoformat(timespec="seconds")
            for job in self.config.jobs
            if (when := self.scheduler.next_run(job.name)) is not None
        }

    def _last_runs(self) -> dict[str, dt.datetime]:
        """Last start time per job (naive local), so interval grids carry over a restart."""
        out = {}
        for name, js in {**self._legacy_state, **self.state.read()["jobs"]}.items():
            try:
                out[name] = dt.datetime.fromisoformat(js["last_run"]).astimezone().replace(tzinfo=None)
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def _seed_legacy_state(self) -> None:
        legacy = self.store.legacy_state()
        if not legacy:
            return

        def seed(state: dict[str, Any]) -> None:
            for name, fields in legacy.items():
                state["jobs"].setdefault(name, dict(fields))

        self._update_state(seed)

    # -- status -------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One entry per job: the spec's `get_job_status` fields plus running details."""
        state = self.state.read()
        running = {
            entry.get("job_name"): entry
            for entry in state["running"].values()
            if proctree.is_same_process(entry.get("owner_pid"), entry.get("owner_create_time"))
        }
        published = state.get("next_runs", {}) if not self.running and scheduler_pid(self.store) is not None else None
        anchors = self._last_runs() if not self.running and published is None else None  # for previews only
        out = []
        for job in self.config.jobs:
            js = state["jobs"].get(job.name) or self._legacy_state.get(job.name, {})
            if self.running:
                next_run = self.scheduler.next_run(job.name)
            elif published is not None:
                next_run = _parse_local(published.get(job.name)) if job.enabled else None
            else:
                next_run = next_run_preview(job, self.clock, anchors)
            out.append(status_entry(job, js, next_run, running.get(job.name)))
        return out


def next_run_preview(job: Job, clock: Clock | None = None, anchors: dict[str, dt.datetime] | None = None) -> dt.datetime | None:
    """When `job` would next run if a scheduler started now (for `list` without a daemon)."""
    if not job.enabled:
        return None
    preview = JobScheduler(clock)
    preview.sync([job], anchors=anchors)
    return preview.next_run(job.name)


def scheduler_pid(store: ConfigStore) -> int | None:
    """The pid of the scheduler holding `store`'s config, or None when none holds it."""
    path = store.runtime_dir / "scheduler.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
    finally:
        os.close(fd)


def new_run_id() -> str:
    # os.urandom, not secrets: the id needs no crypto, and `secrets` costs the daemon ~4 MB of OpenSSL
    return f"{dt.datetime.now():%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"


def _parse_local(iso: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None


def _hhmmss(when: dt.datetime | None) -> str:
    return when.strftime("%H:%M:%S") if when else "?"


def _tail_of(path: str | None, limit: int) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
