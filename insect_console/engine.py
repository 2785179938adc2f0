"""The engine: schedules and runs the jobs of one config file.

The daemon, the console and the CLI all drive this class. It ties small parts together: the
config store (config.py), the run state (state.py), due times (scheduling.py), one run
(runner.py), history records (records.py, history.py), crash recovery (recovery.py), log
retention (retention.py), the config watcher (watch.py) and the control socket (control.py).
Two parts of the class live beside it: dispatch with the run policies (dispatch.py) and one run
from its start to its record (execution.py). What is left here is the lifecycle, the loop that
decides what is due and sleeps until the next due time, and the commands.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from insect_console import recovery
from insect_console.clock import Clock, SystemClock
from insect_console.config import Config, ConfigStore, DEFAULT_CONFIG_PATH
from insect_console.control import ControlServer, socket_path
from insect_console.errors import AlreadyRunning, ConfigError, SchedulerRunning
from insect_console.events import ClockJumped, ConfigReloaded, EventBus, Listener
from insect_console.fileio import DirectoryGone, InstanceLock
from insect_console.history import HistoryWriter
from insect_console.jobs import Job
from insect_console.dispatch import Dispatch
from insect_console.execution import Execution, _Stopped
from insect_console.local_files import LocalFiles
from insect_console.retention import LogKeeper
from insect_console.runqueue import Intent, RunQueue
from insect_console.runslots import RunSlot, RunSlots
from insect_console.scheduling import JobScheduler
from insect_console.state import StateStore, last_runs, ran_this_boot
from insect_console.station import read_boot
from insect_console.surface import ActiveRun, JobStatus, job_statuses, status_from_files
from insect_console.triggers import Boot, aware
from insect_console.watch import Watcher, get_watcher

log = logging.getLogger("insect_console.engine")

MAX_SLEEP = 30.0
"""Longest single sleep of the loop, so a wall-clock change is noticed within this time."""
START_LEAD = 0.025
"""The loop wakes this long before a due time: the run is prepared (locks, paths, environment)
ahead, and only `Popen` is left for the due instant."""
CLOCK_JUMP = 5.0
"""A difference between wall-clock and monotonic time larger than this counts as a clock jump."""


class Engine(LocalFiles, Dispatch, Execution):
    """Schedules and runs the jobs of one config file. Implements `surface.EngineView`."""

    attached = False
    daemon_pid: int | None = None
    START_LEAD = START_LEAD
    remote_host: str | None = None

    def __init__(self, config_path: Path | str = DEFAULT_CONFIG_PATH, *, base_dir: Path | str | None = None, clock: Clock | None = None,
                 boot: Boot | None = None) -> None:
        self.store = ConfigStore(config_path, base_dir)
        self.config: Config = self.store.load(create=True)
        self.state = StateStore(self.store.state_path, self.store.runtime_dir / "state.lock")
        self.clock = clock or SystemClock()
        self.boot = boot or read_boot(self.clock)
        """This boot of the machine (read once: boot jobs run once per boot)."""
        self.scheduler = JobScheduler(self.clock, self.site())
        self.events = EventBus()
        self.history_log = HistoryWriter(lambda: self.log_dir)
        self.log_keeper = LogKeeper(lambda: self.log_dir, lambda: self.settings, self._protected_outputs)
        self.heartbeat: Callable[[], None] | None = None
        """Called by the loop on every wake (the daemon's systemd watchdog ping)."""
        self.max_sleep = MAX_SLEEP
        """The loop's longest sleep (shorter under a watchdog that wants pings more often)."""
        self._slots = RunSlots()
        self.queue = RunQueue(self.state)
        self._stop_lock = threading.Lock()
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._reload_requested = self._stop_called = False
        self._pool: ThreadPoolExecutor | None = None
        self._loop_thread: threading.Thread | None = None
        self._scheduler_lock: InstanceLock | None = None
        self._control: ControlServer | None = None
        self._watcher: Watcher | None = None
        self._legacy_state = self.store.legacy_state()  # run state inside a spec-format JSON config
        self._relocking = False  # the config directory was moved away and is not back yet

    @property
    def running(self) -> bool:
        return self._loop_thread is not None and self._loop_thread.is_alive()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.events.subscribe(listener)

    def own_scheduler(self) -> "Engine":
        return self  # it is the scheduler

    def reconnect(self) -> "Engine":
        return self  # nothing to reconnect to

    # -- lifecycle (scheduler mode) ----------------------------------------

    def start(self) -> None:
        """Take the scheduler lock, recover runs cut off by a crash, and start scheduling."""
        self.store.check_log_dir(self.settings)
        lock = InstanceLock(self.store.scheduler_lock_path, upto=self.store.directory)
        if not lock.acquire():
            raise SchedulerRunning(self.store.display_path, InstanceLock.holder(lock.path))
        self._scheduler_lock = lock
        self.state.seed(self._legacy_state)
        self.recover_interrupted()
        since = (self.clock.now(), self.clock.monotonic())  # a jump from here on is one the loop sees
        state = self.state.read()
        self.scheduler.sync(self.config.jobs, anchors=last_runs(state, self._legacy_state), site=self.site(),
                            done_this_boot=ran_this_boot(state, self.boot.id))
        self._resume_pending()
        self.state.try_update(self._publish_next_runs)
        self._pool = ThreadPoolExecutor(max_workers=self.settings.max_parallel, thread_name_prefix="run")
        self._loop_thread = threading.Thread(target=self._loop, args=since, name="scheduler", daemon=True)
        self._loop_thread.start()
        self._watch_and_serve()
        log.info("scheduler started: %d jobs (%d enabled), config %s", len(self.config.jobs), sum(j.enabled for j in self.config.jobs), self.store.display_path)

    def stop(self, grace: float | None = None) -> None:
        """Stop starting runs, let running ones finish within `grace`, then end their trees.

        Safe to call more than once, from any thread: only the first call does the work.
        """
        with self._stop_lock:
            if self._stop_called:
                return
            self._stop_called = True
        self.request_stop()
        if self._loop_thread is not None:
            self._loop_thread.join()
        grace = self.settings.shutdown_grace if grace is None else grace
        for slot in self._slots.wait_empty(grace):
            if slot.run is not None:
                log.warning("%s: still running after the %s s shutdown grace; ending it", slot.job_name, grace)
                slot.run.kill("interrupted", f"stopped at shutdown (still running after {grace:g} s)")
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._slots.clear()
        for part in (self._watcher, self._control):
            if part is not None:
                part.stop()
        self._control = None
        if self._scheduler_lock is not None:
            self._scheduler_lock.release()
            self._scheduler_lock = None
        log.info("scheduler stopped")

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop ends and `wait_stopped()` returns."""
        self._stopping.set()
        self._wake.set()

    def wait_stopped(self) -> None:
        while not self._stopping.wait(3600):
            pass

    def _keep_lock(self) -> None:
        """One scheduler per config, also when its directory is replaced under it (restored from
        a backup: `mv config config.old && cp -a config.old config`): the lock is taken anew in
        the new directory, with the control socket and the watcher; if another scheduler got there
        first, this one stops and says why."""
        try:
            outcome = self._scheduler_lock.renew(self.store.path.exists()) if self._scheduler_lock else "held"
        except OSError as e:  # a half-copied directory (a lock file we may not use): look again in a second
            log.warning("the config directory was replaced; can't take its scheduler lock yet: %s", e)
            outcome = "waiting"
        self._relocking = outcome == "waiting"
        where = self.store.directory
        if outcome == "taken":
            log.error("the config directory %s was replaced and another scheduler (pid %s) took it; stopping this one", where, InstanceLock.holder(self.store.scheduler_lock_path))
            self.request_stop()
        elif outcome == "renewed":
            log.warning("the config directory %s was replaced; took its scheduler lock, control socket and watch anew", where)
            for part in (self._watcher, self._control):
                if part is not None:
                    part.stop()
            self._watch_and_serve()
            self.request_reload()
            if self.running:  # what was written while the directory was away went nowhere
                self.state.try_update(self._publish_next_runs)

    def _watch_and_serve(self) -> None:
        self._watcher = get_watcher(self.store.directory, {self.store.path.name}, lambda _name: self.request_reload())
        self._control = ControlServer.serve(self, socket_path(self.store.runtime_dir))

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def reload(self) -> None:
        """Read the config again; a broken file is reported and the old jobs are kept."""
        self._reload_requested = False
        try:
            config = self.store.load(create=False)
            self.store.check_log_dir(config.settings)
        except ConfigError as e:
            log.error("config not reloaded, keeping the previous jobs: %s", e)
            self.events.emit(ConfigReloaded(error=str(e)))
            return
        if config != self.config:
            self.config = config
            self.scheduler.sync(config.jobs, site=self.site())
            self.queue.drop({job.name for job in config.jobs if job.enabled})
            self._wake.set()  # a new or moved job may be due before the loop's current sleep ends
            if self.running:
                self.state.try_update(self._publish_next_runs)
            log.info("config reloaded: %d jobs", len(config.jobs))
        self.events.emit(ConfigReloaded())

    # -- the loop ---------------------------------------------------------

    def _loop(self, last_wall: dt.datetime, last_mono: float) -> None:
        """Dispatch due jobs until stopped; the clocks as read when next runs were computed start the jump check."""
        while not self._stopping.is_set():
            self._wake.clear()
            wall, mono = self.clock.now(), self.clock.monotonic()
            # compared as instants: the hour a DST change adds or removes is not a jump
            jump = (aware(wall) - aware(last_wall)).total_seconds() - (mono - last_mono)
            last_wall, last_mono = wall, mono
            if abs(jump) > CLOCK_JUMP:
                self._on_clock_jump(jump)
            self.log_keeper.daily(wall.date())
            self._keep_lock()
            if self._reload_requested:
                self.reload()
            held: list[dt.datetime] = []
            if self.heartbeat is not None:
                try:
                    self.heartbeat()
                except Exception:
                    log.exception("heartbeat failed")  # never stops the loop
            try:
                if not self._relocking:  # runs wait while the config directory is being put back
                    held = self._dispatch_due(wall)
            except Exception:
                log.exception("scheduler loop error")
            self.clock.wait(self._wake, self._sleep_for(held))

    def _sleep_for(self, held: list[dt.datetime]) -> float:
        """Until the next due time or pending intent, less the lead; exactly until a held one;
        a second while the config directory is being put back."""
        if self._relocking:
            return 1.0
        now = self.clock.now()
        if held:  # due within the lead but still running: look again exactly when due
            return min(max((aware(min(held)) - aware(now)).total_seconds(), 0.0), self.max_sleep)
        times = [now + dt.timedelta(seconds=s) for s in [self.scheduler.seconds_until_next()] if s is not None]
        times += [t for t in [self.queue.next_time()] if t is not None]
        wait = (min(times) - now).total_seconds() - START_LEAD if times else self.max_sleep
        return min(max(wait, 0.0), self.max_sleep)

    def _on_clock_jump(self, seconds: float) -> None:
        log.warning("wall clock jumped %+.1f s; interval jobs keep their spacing, %s", seconds, self.scheduler.on_clock_jump(seconds))
        if seconds > 0:
            self._catch_up()  # a Pi booted at its last shutdown time, then stepped forward by NTP
        if self.running:
            self.state.try_update(self._publish_next_runs)
        self.events.emit(ClockJumped(seconds))

    def _run_on_worker(self, job: Job, slot: RunSlot, intent: Intent) -> None:
        unmet = None
        try:
            if (unmet := self._unmet(job, intent)) is not None:
                self._slots.release(slot)
                parked: list[Intent] = []
                self._wait(job, intent, unmet, job.policy.require_wait_s, parked)
                self.queue.put(*parked)
            elif not self._stopping.is_set():
                self.execute(job, intent.trigger, slot=slot, not_before=intent.not_before, intent=intent)
        except _Stopped:
            if intent.trigger != "schedule":
                self.queue.put(intent)  # for the next start
        except AlreadyRunning as e:
            self._skip(job, str(e), slot.run_id, slot.trigger)
        except DirectoryGone:
            log.warning("%s: the config directory is gone (being restored?); the run waits until it is back", job.name)
            self.queue.put(intent)
        except Exception:
            log.exception("%s: run failed", job.name)
        finally:
            self._slots.release(slot)
            if unmet is None and self.queue.hurry({job.name, *self._group(job)}, self.clock.now()):
                self._wake.set()  # runs waiting for this one (its next catch-up, its group) are looked at now

    # -- commands -----------------------------------------------------------

    def run_now(self, name: str) -> ActiveRun:
        """Start `name` now on a worker (scheduler mode). Raises AlreadyRunning if it (or a job
        of its group) runs."""
        job = self.config.job(name)
        slot, busy = self._claim(job, "manual")
        if slot is None:
            if busy is None:
                raise AlreadyRunning("the scheduler is not running")
            raise AlreadyRunning(f"{name} is already running" if busy.job_name == name else f"{name} can't start now: {busy.job_name} runs (group {job.policy.group})")
        now = self.clock.now()
        self._pool.submit(self._run_on_worker, job, slot, Intent(name, "manual", now, now))
        return slot.view()

    def kill(self, name: str) -> bool:
        """End the running run of `name` (its whole process tree). False if it is not running here."""
        slot = self._slots.get(name)
        if slot is None or slot.run is None:
            return False
        slot.killed = True
        slot.run.kill("error", "killed on request")
        return True

    def active_runs(self) -> dict[str, ActiveRun]:
        return self._slots.views()

    def status(self) -> list[JobStatus]:
        """Every job's status; next runs from this engine's scheduler while it runs."""
        state = self.state.read()
        if self.running:
            return job_statuses(self.config.jobs, state, lambda job: self.scheduler.next_run(job.name), self._legacy_state)
        return status_from_files(self.store, self.config, state, self.clock, self._legacy_state, self.site())

    # -- state kept for others ------------------------------------------------

    def recover_interrupted(self) -> list[dict[str, Any]]:
        """Record runs whose owner died mid-run as `interrupted`, and end their leftovers."""
        return recovery.recover_interrupted(self.state, self.history_log, kill_grace=self.settings.kill_grace, tail_bytes=self.settings.output_tail_bytes)

    def prune_logs(self) -> None:
        """Apply the retention settings to the log directory now (runs in progress are kept)."""
        self.log_keeper.prune(self.clock.now().date())

    def _protected_outputs(self) -> set[str]:
        mine = {slot.output_file for slot in self.active_runs().values() if slot.output_file}
        return mine | {e["output_file"] for e in self.state.read()["running"].values() if e.get("output_file")}

    def _publish_next_runs(self, state: dict[str, Any]) -> None:
        """Put the scheduler's next runs in the state, for `list` and other processes to show."""
        state["next_runs"] = self.scheduler.published()
        for name in self.scheduler.ran_this_boot():  # so a daemon restarted in this boot does not run them again
            state.setdefault("boot_runs", {})[name] = self.boot.id

