"""What a station keeper plugs in, wired to an engine through its events: Healthchecks pings,
the Prometheus textfile and systemd's STATUS= line.

The daemon, and a console that runs its own scheduler, attach one `Operations` to their engine;
`run-job` without a daemon attaches one for pings only. Nothing here runs on the engine's
threads but a queue put: pings go out from their own thread (see pings.py), and the metrics
file and STATUS= are written by the `operations` thread, started by the loop's first heartbeat
(`beat`) so that it exists only once the engine schedules.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from insect_console import metrics as metrics_mod
from insect_console.events import ConfigReloaded, Event, RunFinished, RunSkipped, RunStarted
from insect_console.fileio import Outage
from insect_console.surface import JobStatus
from insect_console.pings import Pinger, check_url

log = logging.getLogger("insect_console.operations")

_STOP = object()


class Operations:
    def __init__(self, engine: Any, *, scheduler: bool = True, notifier: Any = None) -> None:
        """`scheduler`: the engine schedules (write metrics, STATUS=); False for `run-job`."""
        self.engine = engine
        self.scheduler = scheduler
        self.notifier = notifier
        self.pinger = Pinger()
        self.metrics = metrics_mod.MetricsFile()
        self.started: float | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state_outage = Outage()
        self._unsubscribe = engine.subscribe(self._on_event)

    # -- hooks -------------------------------------------------------------------------------

    def beat(self) -> None:
        """The scheduling loop's heartbeat: the first one starts the operations thread."""
        if self._thread is not None or not self.scheduler:
            return
        with self._lock:
            if self._thread is not None:
                return
            self.started = time.time()
            self._thread = threading.Thread(target=self._work, name="operations", daemon=True)
            self._thread.start()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._ping_start(event)
        elif isinstance(event, RunFinished):
            self._ping_end(event)
        if self._thread is not None and isinstance(event, (RunStarted, RunFinished, RunSkipped, ConfigReloaded)):
            if self.notifier is not None or isinstance(event, ConfigReloaded) or self._metrics_path() is not None:
                self._queue.put(event)  # nothing to do for the others when there is neither metrics file nor systemd

    def _ping_start(self, event: RunStarted) -> None:
        url = self._url(event.job_name)
        if url:
            self.pinger.run_started(event.job_name, url, event.run_id)

    def _ping_end(self, event: RunFinished) -> None:
        url = self._url(event.job_name)
        if url:
            self.pinger.run_finished(event.job_name, url, event.run_id, event.record)

    def _url(self, name: str) -> str | None:
        config = self.engine.config
        try:
            job = config.job(name)
        except Exception:
            return None
        return check_url(job, config.settings.ping_base)

    def close(self, ping_wait: float | None = None) -> None:
        """Stop listening; write the metrics a last time (up 0); send the pings still queued."""
        self._unsubscribe()
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(30)
        if ping_wait is None:
            self.pinger.close()
        else:
            self.pinger.close(ping_wait)

    # -- the operations thread -----------------------------------------------------------------

    def _work(self) -> None:
        self._seed()
        if self.notifier is not None or self._metrics_path() is not None:
            self._write(up=True)
        last = time.monotonic()
        while True:
            wait = max(0.0, last + metrics_mod.INTERVAL - time.monotonic()) if self._metrics_path() else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            items = [item]
            while True:  # what else came meanwhile: one write for a burst
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ended = [e.record for e in items if isinstance(e, RunFinished)]
            ended += [{"job_name": e.job_name, "status": "skipped"} for e in items if isinstance(e, RunSkipped)]
            if ended and self._metrics_path():
                self._update_state(lambda state: metrics_mod.count(state, ended))
            if any(isinstance(e, ConfigReloaded) for e in items):
                self._seed()
            stop = any(e is _STOP for e in items)
            if self.notifier is not None or self._metrics_path() is not None:
                self._write(up=not stop)
            last = time.monotonic()
            if stop:
                return

    def _metrics_path(self):
        name = self.engine.settings.metrics_file.strip()
        return self.engine.store.resolve(name) if name else None

    def _seed(self) -> None:
        if self._metrics_path() is None:
            return
        try:
            statuses = metrics_mod.job_status(self.engine)
        except Exception:
            log.exception("can't read the jobs' status for the metrics")
            return
        section = self.engine.state.read().get(metrics_mod.STATE_KEY) or {}
        known = section.get("last_success") if isinstance(section, dict) else None
        if isinstance(known, dict) and all(s.name in known for s in statuses):
            return  # the usual case: nothing to look up, nothing to write
        log_dir = self.engine.log_dir

        def seed(state: dict[str, Any]) -> None:
            metrics_mod.seed_from_history(state, log_dir, statuses)

        self._update_state(seed)

    def _update_state(self, change) -> None:
        try:
            self.engine.state.update(change)
        except OSError as e:
            if self._state_outage.failed():
                log.error("can't keep the run counts in the state file: %s", e.strerror or e)
            return
        if self._state_outage.worked():
            log.warning("run counts are kept in the state file again")

    def _write(self, up: bool) -> None:
        try:
            statuses = metrics_mod.job_status(self.engine)
        except Exception:
            log.exception("can't read the jobs' status")
            return
        if self.notifier is not None and up:
            self.notifier.status(status_line(statuses))
        path = self._metrics_path()
        if path is None:
            return
        try:
            section = self.engine.state.read().get(metrics_mod.STATE_KEY) or {}
            self.metrics.write(path, statuses, section if isinstance(section, dict) else {}, up=up, started=self.started)
        except Exception:
            log.exception("writing the metrics file failed")


def status_line(statuses: list[JobStatus]) -> str:
    """systemd's STATUS=: "4 jobs (3 enabled), 1 running (detect); next: detect at 14:00:00"."""
    enabled = sum(s.enabled for s in statuses)
    running = [s.name for s in statuses if s.running]
    line = f"{len(statuses)} job{'s' if len(statuses) != 1 else ''} ({enabled} enabled), {len(running)} running"
    if running:
        line += f" ({', '.join(running[:3])}{', …' if len(running) > 3 else ''})"
    upcoming = [s for s in statuses if s.next_run is not None]
    if upcoming:
        first = min(upcoming, key=lambda s: s.next_run.timestamp())
        line += f"; next: {first.name} at {first.next_run.astimezone().strftime('%H:%M:%S') if first.next_run.tzinfo else first.next_run.strftime('%H:%M:%S')}"
    return line
