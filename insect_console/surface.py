"""The engine surface the console drives: `EngineView`, and the dataclasses it answers with.

Three implementations: `Engine` (this process schedules), `RemoteEngine` (a daemon on this
machine schedules; we talk to it over its control socket) and `SshEngine` (a daemon on another
station, reached over ssh; everything comes over the control protocol). The console codes
against this Protocol and nothing else, so it shows the same screens with the same keys
whichever it has, and it never reaches into an engine's state file, scheduler or config store.

Answers are dataclasses with datetimes (naive local time, the engine's time base), never wire
strings. `status()` never blocks on a socket: a remote engine answers from a cache kept fresh by
the daemon's events.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

from insect_console.clock import Clock, SystemClock
from insect_console.config import Config, ConfigStore, Settings
from insect_console.fileio import InstanceLock
from insect_console.jobs import Job
from insect_console.runqueue import Intent
from insect_console.state import last_runs, ran_this_boot
from insect_console.textfmt import parse_local

if TYPE_CHECKING:  # `list` imports this module: psutil, schedule and the triggers only when needed
    from insect_console.events import Listener
    from insect_console.history import HistoryPage, HistoryQuery
    from insect_console.sysstats import StatsProvider
    from insect_console.triggers import Site


@dataclass(frozen=True)
class JobStatus:
    """One job as the job table shows it: its definition, its last run, its next run, and
    whether it runs now (here or in another process, e.g. a `run-job` from a shell)."""

    name: str
    enabled: bool
    schedule_type: str
    schedule_time: str
    schedule: str
    """The schedule in words ("every 1h", "daily 02:00")."""
    last_run: dt.datetime | None = None
    last_status: str | None = None
    error_count: int = 0
    last_duration_s: float | None = None
    last_output_file: str | None = None
    next_run: dt.datetime | None = None
    running: bool = False
    running_since: dt.datetime | None = None
    running_pid: int | None = None
    running_output_file: str | None = None
    waiting: str | None = None
    """Why a due run has not started yet ("battery 22 % < 30 %", "retry 2 at 10:05:00")."""
    waiting_since: dt.datetime | None = None

    def to_wire(self) -> dict[str, Any]:
        """For the control socket: times as ISO with their UTC offset, so a console in another
        time zone reads them right."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.astimezone().isoformat(timespec="milliseconds") if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> "JobStatus":
        fields = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in fields}
        for key in ("last_run", "next_run", "running_since", "waiting_since"):
            values[key] = parse_local(values.get(key))
        values.setdefault("schedule", f"{values.get('schedule_type')} {values.get('schedule_time')}")
        return cls(**values)


@dataclass(frozen=True)
class ActiveRun:
    """A run in progress that the engine (or the daemon we are attached to) owns."""

    job_name: str
    run_id: str
    trigger: str
    start_time: dt.datetime | None = None
    output_file: str | None = None
    pid: int | None = None


def job_statuses(
    jobs: Iterable[Job],
    state: Mapping[str, Any],
    next_run: Callable[[Job], dt.datetime | None],
    fallback: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[JobStatus]:
    """The status of each job from the run state (`jobs` and `running` tables of the state
    file) and a source of next runs. `fallback` is run state found elsewhere (a spec-format
    JSON config's own fields), used for jobs the state file does not know yet."""
    running: dict[Any, Mapping[str, Any]] = {}
    if state.get("running"):
        from insect_console import proctree  # psutil: only when there are runs to look at

        running = {
            entry.get("job_name"): entry
            for entry in state["running"].values()
            if proctree.is_same_process(entry.get("owner_pid"), entry.get("owner_create_time"))
        }
    pending = state.get("pending", {})
    out = []
    for job in jobs:
        js = state.get("jobs", {}).get(job.name) or (fallback or {}).get(job.name, {})
        run = running.get(job.name)
        waiting = next((i for e in pending.get(job.name, ()) if (i := Intent.from_state(e)) is not None), None)
        out.append(
            JobStatus(
                name=job.name,
                enabled=job.enabled,
                schedule_type=job.schedule_type,
                schedule_time=job.schedule_time,
                schedule=job.describe(),
                last_run=parse_local(js.get("last_run")),
                last_status=js.get("last_status"),
                error_count=js.get("error_count", 0) or 0,
                last_duration_s=js.get("last_duration_s"),
                last_output_file=js.get("last_output_file"),
                next_run=next_run(job),
                running=run is not None,
                running_since=parse_local(run.get("start_time")) if run else None,
                running_pid=run.get("pid") if run else None,
                running_output_file=run.get("output_file") if run else None,
                waiting=waiting.describe() if waiting else None,
                waiting_since=waiting.waiting_since if waiting else None,
            )
        )
    return out


def status_from_files(store: ConfigStore, config: Config, state: Mapping[str, Any], clock: Clock | None = None,
                      fallback: Mapping[str, Mapping[str, Any]] | None = None, site: Site | None = None) -> list[JobStatus]:
    """Status when no scheduler runs in this process (`list`, a console whose daemon left): the
    next runs a running daemon published in the state, else those a scheduler would have if it
    started now."""
    if InstanceLock.holder(store.scheduler_lock_path) is not None:
        published = state.get("next_runs", {})
        return job_statuses(config.jobs, state, lambda job: parse_local(published.get(job.name)) if job.enabled else None, fallback)
    anchors = last_runs(state, fallback)
    from insect_console.scheduling import next_run_preview
    from insect_console.station import read_boot, site_for

    site = site or site_for(config.settings, read_boot(clock or SystemClock()))
    done = ran_this_boot(state, site.boot.id) if site.boot else set()
    return job_statuses(config.jobs, state, lambda job: next_run_preview(job, clock, anchors, site, done), fallback)


class HistoryPages(Protocol):
    """One history query's runs, newest first, a page at a time (history.HistoryCursor, or
    sshengine.WireCursor over the wire)."""

    def next_page(self, count: int) -> HistoryPage:
        """The next `count` slim records (may block: call it on a worker)."""

    def close(self) -> None:
        """Stop the query (never blocks)."""


@runtime_checkable
class EngineView(Protocol):
    """What the console may ask of an engine, local or remote."""

    attached: bool
    """True when a daemon in another process schedules and this is a connection to it."""
    daemon_pid: int | None
    """The scheduling daemon's pid when attached."""
    remote_host: str | None
    """The station's name when its daemon is on another machine (None: this machine)."""
    clock: Clock
    config: Config
    """The jobs and settings as last read (a new object after every reload)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def running(self) -> bool:
        """Scheduling now (or, attached, connected to a daemon that schedules)."""

    @property
    def where(self) -> str:
        """Which config this is, for the top bar: its path."""

    @property
    def log_dir(self) -> Path:
        """The station's log directory (the status line shows the free disk there)."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Get engine events on the engine's threads; returns the function that unsubscribes."""

    def own_scheduler(self) -> "EngineView":
        """An engine scheduling this config in this process, not yet started: what an attached
        console switches to when its daemon went away (an `Engine` is its own)."""

    def reconnect(self) -> "EngineView":
        """A new connection to the same daemon, not yet started (an `Engine` is its own)."""

    def stats_provider(self) -> StatsProvider:
        """The station's system stats for the status line; never blocks (a remote station's
        come from a cache)."""

    # -- jobs and runs ----------------------------------------------------------

    def status(self) -> list[JobStatus]:
        """Every job's status, in config order. Never blocks on a socket."""

    def active_runs(self) -> dict[str, ActiveRun]: ...

    def run_now(self, name: str) -> ActiveRun:
        """Start a run of `name` now; AlreadyRunning if it runs. May block (call it on a worker)."""

    def kill(self, name: str) -> bool:
        """End the running run of `name`; False if it was not running. May block."""

    def start(self) -> None:
        """Start scheduling (or attach); SchedulerRunning when another process schedules."""

    def request_stop(self) -> None:
        """Start no new runs (the console is quitting and waits for the running ones)."""

    def stop(self, grace: float | None = None) -> None: ...

    # -- config changes (validated by the engine's own validator; may block) ----

    def add_job(self, job: Job) -> None: ...

    def replace_job(self, name: str, job: Job) -> None: ...

    def remove_job(self, name: str) -> None: ...

    def set_enabled(self, name: str, enabled: bool) -> None: ...

    def preview(self, job: Job, count: int = 5) -> list[dt.datetime]:
        """The next `count` due times `job` would have, as this station computes them."""

    # -- history and output files ---------------------------------------------------

    def history(self, query: HistoryQuery) -> HistoryPages:
        """The runs matching `query`, newest first, a page at a time. Never blocks."""

    def run_record(self, slim_record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The full record (with its output tail) of a run listed by `history`."""

    def recent_results(self, names: list[str], width: int) -> dict[str, list[tuple[str, float | None]]]:
        """Per job, its last `width` (status, duration) pairs, newest first."""

    def output_tail(self, path: str, max_lines: int) -> tuple[list[str], bool, int]:
        """The last lines of a run's output file, whether there is more before, and its size."""

    def output_since(self, path: str, offset: int) -> tuple[list[str], int]:
        """Whole lines appended to a run's output file after `offset`, and the new offset."""
