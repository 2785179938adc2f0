"""Many stations: the stations file, and one look at a station for the overview.

A keeper of many Pis keeps a scheduler on each station and watches them from one console:
`insect-console stations` lists the stations of `~/.config/insect-console/stations.toml`

    [[stations]]
    name = "meadow"                                  # what the overview shows
    host = "pi@meadow.local"                         # [user@]host[:port]; ~/.ssh/config applies
    config = "/srv/obs/config/batch_config.toml"     # the station's config (default config/batch_config.toml)
    remote_command = "/srv/obs/.venv/bin/insect-console"   # optional; default insect-console

and looks at each over ssh (`StationProbe`: connect, `hello`, status, the newest failure, close).
Each look runs on a thread of its own and can be cancelled, so one slow or dead station never
holds up the others, and leaving the overview ends every ssh it started.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from insect_console.control import ControlClient
from insect_console.errors import ConfigError, DaemonGone, UserError
from insect_console.history import HistoryQuery
from insect_console.protocol import explain, greet, query_to_wire
from insect_console.surface import JobStatus
from insect_console.transport import DEFAULT_CONFIG, DEFAULT_REMOTE_COMMAND, SshTarget

FIELDS = ("name", "host", "config", "remote_command")
PROBE_TIMEOUT = 20.0
"""Seconds one answer may take during a look (ssh's own ConnectTimeout is 15 s)."""
FAILED = ("error", "timeout", "interrupted")


def default_stations_file() -> Path:
    """$XDG_CONFIG_HOME/insect-console/stations.toml (~/.config/... by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "insect-console" / "stations.toml"


@dataclass(frozen=True)
class Station:
    name: str
    host: str
    config: str = DEFAULT_CONFIG
    remote_command: str = DEFAULT_REMOTE_COMMAND

    def target(self) -> SshTarget:
        return SshTarget.parse(self.host, config=self.config, remote_command=self.remote_command, name=self.name)


def load_stations(path: Path) -> list[Station]:
    """The stations of a stations file; a mistake in it is one line (ConfigError) naming the file."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: no stations file; write one with a [[stations]] table per station (name, host, config)") from None
    except OSError as e:
        raise ConfigError(f"{where}: can't read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    entries = data.get("stations")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: no stations; add a [[stations]] table per station (name, host, config)")
    stations: list[Station] = []
    for n, entry in enumerate(entries, 1):
        label = f"{where}: station {n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{label}: must be a table with name, host, config")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise ConfigError(f"{label}: {unknown[0]!r} is not a station field; the fields are {', '.join(FIELDS)}")
        for key in FIELDS:
            if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
                raise ConfigError(f"{label}: {key} must be non-empty text")
        for key in ("name", "host"):
            if key not in entry:
                raise ConfigError(f"{label}: no {key}")
        station = Station(**{k: entry[k].strip() for k in FIELDS if k in entry})
        if any(s.name == station.name for s in stations):
            raise ConfigError(f"{label}: a station named {station.name!r} is listed twice")
        try:
            station.target()
        except UserError as e:
            raise ConfigError(f"{label} ({station.name}): {e}") from None
        stations.append(station)
    return stations


@dataclass(frozen=True)
class StationSummary:
    """One look at a station: what the overview's row shows."""

    name: str
    reachable: bool | None = None
    """None while the first look is under way."""
    jobs: int = 0
    failing: int = 0
    """Jobs whose last run failed."""
    running: int = 0
    next_run: dt.datetime | None = None
    next_job: str | None = None
    last_error: str | None = None
    """Unreachable: why. Reachable: the newest failure ("job: error")."""
    daemon_pid: int | None = None
    daemon: str | None = None
    checked: dt.datetime | None = None
    statuses: tuple[JobStatus, ...] = field(default=(), compare=False)


def summarize(name: str, statuses: Sequence[JobStatus], newest_error: str | None, pid: int | None, daemon: str | None) -> StationSummary:
    """The row for a station that answered."""
    upcoming = [(s.next_run, s.name) for s in statuses if s.enabled and s.next_run is not None]
    when, job = min(upcoming) if upcoming else (None, None)
    return StationSummary(
        name=name, reachable=True, jobs=len(statuses), failing=sum(s.error_count > 0 and s.last_status in FAILED for s in statuses),
        running=sum(s.running for s in statuses), next_run=when, next_job=job, last_error=newest_error, daemon_pid=pid, daemon=daemon,
        checked=dt.datetime.now(), statuses=tuple(statuses),
    )


class StationProbe:
    """One look at one station over ssh (BatchMode: nothing is asked on the terminal).
    `run()` blocks (call it on a thread of its own); `cancel()` ends it from any thread."""

    def __init__(self, station: Station, ssh: Sequence[str] | None = None) -> None:
        self.station = station
        self.ssh = ssh
        self._client: ControlClient | None = None
        self._lock = threading.Lock()
        self._cancelled = False

    def run(self) -> StationSummary:
        try:
            return self._look()
        except UserError as e:
            message = str(e)
            return StationSummary(self.station.name, reachable=False, last_error=message, checked=dt.datetime.now())
        finally:
            self.cancel()

    def _look(self) -> StationSummary:
        target = self.station.target()
        transport = target.open(batch=True, ssh=self.ssh)
        client = ControlClient(transport, timeout=PROBE_TIMEOUT)
        with self._lock:
            self._client = client
            if self._cancelled:
                raise DaemonGone("cancelled")
        try:
            hello = greet(client, wait=PROBE_TIMEOUT * 2)
        except DaemonGone as e:
            why = client.why_closed()
            raise DaemonGone(explain(why or ("no answer" if "did not answer" in str(e) else str(e)))) from None
        status = client.call("status")
        statuses = [JobStatus.from_wire(j) for j in status.get("jobs", [])]
        return summarize(self.station.name, statuses, self._newest_error(client, statuses), hello.get("pid"), hello.get("daemon"))

    @staticmethod
    def _newest_error(client: ControlClient, statuses: Sequence[JobStatus]) -> str | None:
        """"job: error" of the newest failed last run, its error text from the station's history."""
        failed = [s for s in statuses if s.last_status in FAILED and s.last_run is not None]
        if not failed:
            return None
        newest = max(failed, key=lambda s: s.last_run)
        query = query_to_wire(HistoryQuery(job=newest.name, status=newest.last_status, limit=1))
        error: Any = None
        try:
            cursor = client.call("history_open", query=query)["cursor"]
            records = client.call("history_page", cursor=cursor, count=1)["records"]
            error = records[0].get("error") if records else None
        except DaemonGone:
            raise
        except UserError:
            pass
        text = " ".join(str(error).split()) if error else newest.last_status
        return f"{newest.name}: {text}"

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            client, self._client = self._client, None
        if client is not None:
            client.close()


__all__ = ["Station", "StationProbe", "StationSummary", "default_stations_file", "load_stations", "summarize"]
