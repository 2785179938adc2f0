"""Engines that live in another process: a daemon, reached through its control protocol.

`AttachedEngine` is what every attached console shares, whatever carries the protocol: runs,
kills and the live status go through the daemon, and the status is a cache. A refresher thread
asks the daemon for it at start, after every event that changes it (a run started or ended, a
reload, a clock jump) and every `REFRESH` seconds, so `status()` never waits for the socket,
however slow the daemon is to answer.

`RemoteEngine` is the console on the station itself: it reads the config, history and output
files here (they are the daemon's files on this machine), writes config changes to the file
(locked, atomic) and asks the daemon to reload. A console on another machine has no such
files: that is `SshEngine` (sshengine.py), which asks the daemon for everything.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from insect_console.clock import SystemClock
from insect_console.config import Config, ConfigStore
from insect_console.control import ControlClient, DaemonGone, decode_active, socket_path
from insect_console.errors import ConfigError
from insect_console.events import ClockJumped, ConfigReloaded, DaemonLost, Event, EventBus, Listener, RunFinished, RunSkipped, RunStarted, StatusChanged
from insect_console.local_files import LocalFiles
from insect_console.state import StateStore
from insect_console.surface import ActiveRun, JobStatus, job_statuses
from insect_console.textfmt import parse_local

log = logging.getLogger("insect_console.remote")

REFRESH = 10.0
"""Seconds between two status refreshes when no event asked for one."""
_CHANGES_STATUS = (RunStarted, RunFinished, RunSkipped, ConfigReloaded, ClockJumped)


class AttachedEngine:
    """The daemon's side of an attached engine: the connection, the cached status, the events.

    Subclasses say how to connect (`_connect`), what to do once connected (`_after_connect`),
    what the status is without a daemon (`_offline_status`), and may refresh more than the
    status on the refresher thread (`_refresh_more`).
    """

    attached = True
    remote_host: str | None = None
    """The station's name when the daemon is on another machine (None: this machine)."""

    def _init_attached(self) -> None:
        self.events = EventBus()
        self.daemon_pid: int | None = None
        self.lost = threading.Event()
        self._client: ControlClient | None = None
        self._lock = threading.Lock()
        self._status: list[JobStatus] = self._offline_status()
        self._active: dict[str, ActiveRun] = {}
        self._refresh = threading.Event()
        self._closing = threading.Event()
        self._refresher: threading.Thread | None = None

    def _connect(self) -> ControlClient:
        raise NotImplementedError

    def _after_connect(self) -> None:
        """Connected, not yet subscribed (on the thread that calls `start`)."""

    def _refresh_more(self) -> None:
        """On the refresher thread, before each status refresh."""

    def _offline_status(self) -> list[JobStatus]:
        raise NotImplementedError

    def _lost_reason(self, client: ControlClient) -> str:
        return "the daemon stopped or crashed"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Connect, subscribe and read the status once. Raises DaemonGone when no daemon answers."""
        client = self._connect()
        self._client = client
        try:
            self._after_connect()
            client.call("subscribe")
        except BaseException:
            self._client = None
            client.close()
            raise
        self._refresh_status()
        self._refresher = threading.Thread(target=self._keep_fresh, name="status-refresh", daemon=True)
        self._refresher.start()

    def stop(self, grace: float | None = None) -> None:
        """Detach. The daemon goes on scheduling."""
        self._closing.set()
        self._refresh.set()
        client, self._client = self._client, None
        if client is not None:
            client.on_close = None
            client.close()
        if self._refresher is not None and self._refresher is not threading.current_thread():
            self._refresher.join(timeout=2)

    def request_stop(self) -> None:
        """Nothing to stop here: the runs are the daemon's."""

    @property
    def running(self) -> bool:
        return self._client is not None and not self.lost.is_set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.events.subscribe(listener)

    # -- the daemon's side ----------------------------------------------------------

    def _call(self, cmd: str, **args: Any) -> Any:
        client = self._client
        if client is None or self.lost.is_set():
            raise DaemonGone("not attached to a daemon" if self.remote_host is None else f"not connected to {self.remote_host}")
        return client.call(cmd, **args)

    def _keep_fresh(self) -> None:
        while not self._closing.is_set():
            self._refresh.wait(REFRESH)
            self._refresh.clear()
            if not self._closing.is_set() and not self.lost.is_set():
                try:
                    self._refresh_more()
                except DaemonGone:
                    pass  # the connection's close says so (DaemonLost); a slow answer is retried later
                self._refresh_status()

    def _refresh_status(self) -> None:
        try:
            result = self._call("status")
        except DaemonGone:
            return  # as above
        jobs = [JobStatus.from_wire(j) for j in result.get("jobs", [])]
        active = {name: decode_active({"job_name": name, **a}) for name, a in result.get("active", {}).items()}
        with self._lock:
            self.daemon_pid = result.get("pid")
            self._status, self._active = jobs, active
        self.events.emit(StatusChanged())

    def _on_config_reloaded(self, event: ConfigReloaded) -> None:
        """On the client's reader thread (no call on the connection from here)."""

    def _on_event(self, event: Event) -> None:
        """On the client's reader thread: keep what we know current, then pass the event on."""
        if isinstance(event, ConfigReloaded) and event.error is None:
            self._on_config_reloaded(event)
        if isinstance(event, RunStarted):
            with self._lock:
                self._active[event.job_name] = ActiveRun(event.job_name, event.run_id, event.trigger, parse_local(event.start_time), event.output_file, event.pid)
        elif isinstance(event, RunFinished):
            with self._lock:
                if getattr(self._active.get(event.job_name), "run_id", None) == event.run_id:
                    del self._active[event.job_name]
        if isinstance(event, _CHANGES_STATUS):
            self._refresh.set()
        self.events.emit(event)

    def _on_close(self) -> None:
        client = self._client
        if client is not None and not self.lost.is_set():
            self.lost.set()
            with self._lock:
                self._active, self._status = {}, self._offline_status()
            reason = self._lost_reason(client)
            log.warning("the connection to the daemon ended: %s", reason)
            self.events.emit(DaemonLost(reason))

    # -- the surface ------------------------------------------------------------------

    def status(self) -> list[JobStatus]:
        with self._lock:
            return list(self._status)

    def active_runs(self) -> dict[str, ActiveRun]:
        with self._lock:
            return dict(self._active)

    def run_now(self, name: str) -> ActiveRun:
        self.config.job(name)  # type: ignore[attr-defined]
        result = self._call("run", job=name)
        active = ActiveRun(name, result["run_id"], "manual")
        with self._lock:
            self._active.setdefault(name, active)
        return active

    def kill(self, name: str) -> bool:
        return bool(self._call("kill", job=name).get("killed"))


class RemoteEngine(LocalFiles, AttachedEngine):
    """Attached to the daemon of a config on this machine, through its Unix socket."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.config: Config = store.load(create=False)
        self.state = StateStore(store.state_path, store.runtime_dir / "state.lock")
        self.clock = SystemClock()
        self._init_attached()

    @classmethod
    def for_engine(cls, engine: Any) -> "RemoteEngine":
        """Attach to the daemon that holds `engine`'s config (its start raised SchedulerRunning)."""
        return cls(engine.store)

    def own_scheduler(self) -> Any:
        """An engine that schedules this config in this process (not started), for when the daemon left."""
        from insect_console.engine import Engine

        return Engine(self.store.path, base_dir=self.store.base_dir)

    def reconnect(self) -> "RemoteEngine":
        """A new connection to this config's daemon (not started)."""
        return RemoteEngine(self.store)

    def _connect(self) -> ControlClient:
        return ControlClient(socket_path(self.store.runtime_dir), on_event=self._on_event, on_close=self._on_close)

    def _on_config_reloaded(self, event: ConfigReloaded) -> None:
        try:
            self.config = self.store.load(create=False)
        except ConfigError:
            pass

    def _offline_status(self) -> list[JobStatus]:
        """What the files say, without next runs: nothing schedules."""
        return job_statuses(self.config.jobs, self.state.read(), lambda job: None)

    def reload(self) -> None:
        self.config = self.store.load(create=False)
        try:
            self._call("reload")
        except DaemonGone:
            pass


__all__ = ["AttachedEngine", "RemoteEngine", "DaemonGone"]
