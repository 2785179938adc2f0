"""An engine that lives in another process: the daemon, reached through its control socket.

`RemoteEngine` offers the same surface as `Engine` to the console, so the console shows the
same screens with the same keys whether it runs its own engine or is attached to a daemon.
Reads of the config, state and history go straight to the files; runs, kills and the live
status go through the daemon; config changes are written to the file (locked, atomic) and the
daemon is asked to reload.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Callable

from insect_console.clock import SystemClock
from insect_console.config import Config, ConfigStore, Settings
from insect_console.control import ControlClient, DaemonGone, socket_path
from insect_console.engine import ActiveRun, ConfigChanges, status_entry
from insect_console.errors import AlreadyRunning, ConfigError
from insect_console.events import ConfigReloaded, DaemonLost, Event, EventBus, Listener
from insect_console.state import StateStore

log = logging.getLogger("insect_console.remote")


class _RemoteSchedule:
    """`engine.scheduler.next_run(name)` answered from the daemon's last status."""

    def __init__(self, remote: "RemoteEngine") -> None:
        self._remote = remote

    def next_run(self, name: str) -> dt.datetime | None:
        iso = self._remote._next_runs.get(name)
        try:
            return dt.datetime.fromisoformat(iso) if iso else None
        except ValueError:
            return None


class RemoteEngine(ConfigChanges):
    attached = True

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.config: Config = store.load(create=False)
        self.state = StateStore(store.state_path, store.runtime_dir / "state.lock")
        self.clock = SystemClock()
        self.events = EventBus()
        self.scheduler = _RemoteSchedule(self)
        self.daemon_pid: int | None = None
        self._client: ControlClient | None = None
        self._next_runs: dict[str, str] = {}
        self._active: dict[str, ActiveRun] = {}
        self._lock = threading.Lock()
        self.lost = threading.Event()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Connect and subscribe. Raises DaemonGone when no daemon answers."""
        self._client = ControlClient(socket_path(self.store.runtime_dir), on_event=self._on_event, on_close=self._on_close)
        self._client.call("subscribe")
        self.status()

    def stop(self, grace: float | None = None) -> None:
        """Detach. The daemon goes on scheduling."""
        client, self._client = self._client, None
        if client is not None:
            client.on_close = None
            client.close()

    @property
    def running(self) -> bool:
        return self._client is not None and not self.lost.is_set()

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def log_dir(self):
        return self.store.resolve(self.settings.log_dir)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.events.subscribe(listener)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ConfigReloaded) and event.error is None:
            try:
                self.config = self.store.load(create=False)
            except ConfigError:
                pass
        self.events.emit(event)

    def _on_close(self) -> None:
        if self._client is not None and not self.lost.is_set():
            self.lost.set()
            log.warning("the daemon closed the connection")
            self.events.emit(DaemonLost("the daemon stopped or crashed"))

    def _call(self, cmd: str, **args: Any) -> Any:
        if self._client is None or self.lost.is_set():
            raise DaemonGone("not attached to a daemon")
        return self._client.call(cmd, **args)

    # -- the Engine surface the console uses --------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """The daemon's status; once it is gone, what the files say (no next runs: nothing schedules)."""
        try:
            result = self._call("status")
        except DaemonGone:
            with self._lock:
                self._active, self._next_runs = {}, {}
            return self._offline_status()
        self.daemon_pid = result.get("pid")
        jobs = result.get("jobs", [])
        with self._lock:
            self._next_runs = {j["name"]: j.get("next_run") for j in jobs}
            self._active = {
                name: ActiveRun(
                    job_name=name,
                    run_id=a.get("run_id", ""),
                    trigger=a.get("trigger", ""),
                    start_time=_naive(a.get("start_time")),
                    output_file=a.get("output_file"),
                )
                for name, a in result.get("active", {}).items()
            }
        return jobs

    def _offline_status(self) -> list[dict[str, Any]]:
        jobs = self.state.read()["jobs"]
        return [status_entry(job, jobs.get(job.name, {}), None, None) for job in self.config.jobs]

    def active_runs(self) -> dict[str, ActiveRun]:
        with self._lock:
            return dict(self._active)

    def run_now(self, name: str) -> ActiveRun:
        self.config.job(name)
        result = self._call("run", job=name)
        active = ActiveRun(job_name=name, run_id=result["run_id"], trigger="manual", start_time=dt.datetime.now())
        with self._lock:
            self._active[name] = active
        return active

    def kill(self, name: str) -> bool:
        return bool(self._call("kill", job=name).get("killed"))

    def reload(self) -> None:
        self.config = self.store.load(create=False)
        try:
            self._call("reload")
        except DaemonGone:
            pass


def _naive(iso: str | None) -> dt.datetime | None:
    if not iso:
        return None
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    return when.astimezone().replace(tzinfo=None) if when.tzinfo else when


__all__ = ["RemoteEngine", "DaemonGone", "AlreadyRunning"]
