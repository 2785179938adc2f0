"""`SshEngine`: the console's engine for a station elsewhere, its daemon reached over ssh.

`insect-console --host station` runs `ssh -T station insect-console -c CONFIG control-stdio`
and speaks the control protocol through the pipes (transport.py, bridge.py). The station's
files are not here, so everything a console on the station reads or writes directly comes over
the protocol instead: the config (the daemon's jobs and settings), changes to it (validated by
the daemon, refused with the same one-line errors), history pages through a cursor the daemon
keeps for this connection, one run's record, output tails, previews and the station's stats.

The status, the config and the stats are caches kept fresh on the refresher thread, so nothing
the UI thread asks waits on the network; every other call happens on a worker already. A drop
of the connection says so (DaemonLost, with ssh's last words); nothing on the station stops,
and `reconnect()` gives a new connection to the same station.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from insect_console.clock import SystemClock
from insect_console.config import Config, Settings
from insect_console.control import ControlClient, DaemonGone
from insect_console.errors import UserError
from insect_console.events import ConfigReloaded
from insect_console.history import HistoryPage, HistoryQuery
from insect_console.jobs import Job
from insect_console.protocol import ProtocolMismatch, config_from_wire, explain, greet, old_station, query_to_wire
from insect_console.remote import AttachedEngine
from insect_console.surface import JobStatus
from insect_console.sysstats import SystemStats
from insect_console.textfmt import parse_local
from insect_console.transport import SshTarget

log = logging.getLogger("insect_console.sshengine")

CALL_TIMEOUT = 20.0
"""Seconds a request over ssh may take before the console says the station did not answer."""
HELLO_TIMEOUT = 40.0
"""The first answer also waits for ssh to connect and log in (its ConnectTimeout is 15 s)."""
PAGE_TIMEOUT = 90.0
"""A history page filtered by job may read a year of history on a Pi's SD card."""


class WireCursor:
    """A history query's pages from the daemon's cursor, opened on the first page (on a worker:
    the history screen makes the cursor on the UI thread). `close()` never waits."""

    def __init__(self, engine: "SshEngine", query: HistoryQuery) -> None:
        self._engine = engine
        self._query = query
        self._id: int | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.files_read: list[Path] = []

    def next_page(self, count: int) -> HistoryPage:
        with self._lock:
            if self._closed:
                return HistoryPage([], True, 0)
            if self._id is None:
                self._id = self._engine._call("history_open", query=query_to_wire(self._query))["cursor"]
            result = self._engine._call("history_page", wait=PAGE_TIMEOUT, cursor=self._id, count=count)
        if self._closed:  # closed while the page was read: the daemon's cursor goes too
            self.close()
        return HistoryPage(list(result.get("records", [])), bool(result.get("done")), int(result.get("skipped") or 0))

    def close(self) -> None:
        self._closed = True
        cid, self._id = self._id, None
        if cid is not None:
            self._engine._later("history_close", cursor=cid)


class SshEngine(AttachedEngine):
    """A station's daemon over ssh. Implements `surface.EngineView`."""

    def __init__(self, target: SshTarget, *, batch: bool = True, ssh: Sequence[str] | None = None) -> None:
        self.target = target
        self.batch = batch
        """ssh in BatchMode (no passphrase or password asked): every connection but a console's first."""
        self.ssh = ssh
        self.remote_host = target.label
        self.clock = SystemClock()
        self.config = Config()
        self.hello: dict[str, Any] = {}
        self._where = target.config
        self._log_dir = Path(target.config).parent
        self._stats = SystemStats()
        self._config_stale = False
        self._background: ThreadPoolExecutor | None = None
        self._init_attached()

    def _offline_status(self) -> list[JobStatus]:
        """The last status the station gave (nothing before the first), without runs in
        progress: what runs there now can't be known from here."""
        return [dataclasses.replace(s, running=False) for s in getattr(self, "_status", [])]

    # -- connecting ------------------------------------------------------------------

    def _connect(self) -> ControlClient:
        transport = self.target.open(batch=self.batch, ssh=self.ssh)
        client = ControlClient(transport, on_event=self._on_event, on_close=self._on_close, timeout=CALL_TIMEOUT)
        try:
            self.hello = greet(client, wait=HELLO_TIMEOUT)
        except DaemonGone as e:
            why = client.why_closed()  # ssh's reason (or the station's insect-console's one line)
            client.close()
            if not why:
                why = f"no answer within {HELLO_TIMEOUT:g} s" if "did not answer" in str(e) else str(e)
            why = explain(why)
            if (too_old := old_station(why)) is not None:
                raise ProtocolMismatch(f"{self.remote_host}: {too_old}") from None
            raise DaemonGone(f"{self.remote_host}: {why}") from None
        except UserError as e:
            client.close()
            raise (ProtocolMismatch if isinstance(e, ProtocolMismatch) else UserError)(f"{self.remote_host}: {e}") from None
        self.daemon_pid = self.hello.get("pid")
        return client

    def _after_connect(self) -> None:
        self._fetch_config()
        self._fetch_stats()

    def _lost_reason(self, client: ControlClient) -> str:
        why = client.why_closed()
        return f"ssh: {why}" if why else f"the connection to {self.remote_host} ended"

    def reconnect(self) -> "SshEngine":
        """A new connection to the same station (not started); ssh in BatchMode, since the
        console owns the terminal by then."""
        return SshEngine(self.target, batch=True, ssh=self.ssh)

    def own_scheduler(self) -> "SshEngine":
        """The station schedules its own jobs: what a console switches to is a new connection."""
        return self.reconnect()

    def stop(self, grace: float | None = None) -> None:
        super().stop(grace)
        if self._background is not None:
            self._background.shutdown(wait=False, cancel_futures=True)

    # -- caches kept on the refresher thread ---------------------------------------------

    def _fetch_config(self) -> None:
        data = self._call("config")
        self._where = str(data.get("where") or self.target.config)
        self._log_dir = Path(str(data.get("log_dir") or self._log_dir))
        self.config = config_from_wire(data)
        self._config_stale = False

    def _fetch_stats(self) -> None:
        known = SystemStats.__dataclass_fields__
        try:
            self._stats = SystemStats(**{k: v for k, v in self._call("stats").items() if k in known})
        except UserError as e:
            if isinstance(e, DaemonGone):
                raise
            log.info("%s: no stats (%s)", self.remote_host, e)

    def _refresh_more(self) -> None:
        if self._config_stale:
            self._fetch_config()
        self._fetch_stats()

    def _on_config_reloaded(self, event: ConfigReloaded) -> None:
        self._config_stale = True  # fetched on the refresher thread, which the event wakes

    def _later(self, cmd: str, **args: Any) -> None:
        """A request whose answer nobody waits for (closing a history cursor), off the caller's thread."""
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssh-later")

        def send() -> None:
            try:
                self._call(cmd, **args)
            except UserError:
                pass

        try:
            self._background.submit(send)
        except RuntimeError:
            pass  # stopped

    # -- the surface -------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def where(self) -> str:
        return f"{self.remote_host}:{self._where}"

    @property
    def log_dir(self) -> Path:
        """The log directory on the station (for display: it is not on this machine)."""
        return self._log_dir

    def stats_provider(self) -> Callable[[], SystemStats]:
        """The station's stats, as last fetched (the status line shows the station, not this machine)."""
        return lambda: self._stats

    def _changed(self, cmd: str, **args: Any) -> None:
        self._call(cmd, **args)
        self._fetch_config()  # the daemon reloaded before it answered
        self._refresh.set()

    def add_job(self, job: Job) -> None:
        self._changed("add_job", job=job.to_dict())

    def replace_job(self, name: str, job: Job) -> None:
        self._changed("replace_job", name=name, job=job.to_dict())

    def remove_job(self, name: str) -> None:
        self._changed("remove_job", name=name)

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._changed("set_enabled", name=name, enabled=enabled)

    def reload(self) -> None:
        self._call("reload")

    def preview(self, job: Job, count: int = 5) -> list[dt.datetime]:
        runs = self._call("preview", job=job.to_dict(), count=count).get("runs", [])
        return [when for when in (parse_local(r) for r in runs) if when is not None]

    def history(self, query: HistoryQuery) -> WireCursor:
        return WireCursor(self, query)

    def run_record(self, slim_record: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call("run_record", record=dict(slim_record)).get("record")

    def recent_results(self, names: list[str], width: int) -> dict[str, list[tuple[str, float | None]]]:
        results = self._call("recent_results", wait=PAGE_TIMEOUT, names=list(names), width=width).get("results", {})
        return {name: [(pair[0], pair[1]) for pair in pairs] for name, pairs in results.items()}

    def output_tail(self, path: str, max_lines: int) -> tuple[list[str], bool, int]:
        result = self._call("output_tail", path=path, max_lines=max_lines)
        return list(result.get("lines", [])), bool(result.get("more")), int(result.get("size") or 0)

    def output_since(self, path: str, offset: int) -> tuple[list[str], int]:
        result = self._call("output_since", path=path, offset=offset)
        return list(result.get("lines", [])), int(result.get("offset", offset))


__all__ = ["SshEngine", "WireCursor"]
