"""Prometheus metrics as a textfile for node_exporter's textfile collector (`metrics_file`).

Written with prometheus_client (a registry of our own and `write_to_textfile`, which writes a
temp file beside the target and renames it) by the scheduler: after every run and at least
every minute, and once more with `insect_console_up 0` when it stops.

`insect_console_runs_total` survives restarts: the counts are kept in the state file (under
`"metrics"`), written with the state file's lock and atomic write like the rest of it, and start
at 0 when metrics are first switched on. The last success and last duration are kept there too;
when metrics are switched on for a station that already has a history, they are looked up once
in the history files.

prometheus_client is imported only when a metrics file is set (it takes ~0.15 s to import).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from insect_console.fileio import Outage
from insect_console.surface import JobStatus
from insect_console.textfmt import parse_local

log = logging.getLogger("insect_console.metrics")

STATUSES = ("success", "error", "timeout", "interrupted", "skipped")
STATE_KEY = "metrics"
INTERVAL = 60.0
"""The file is written at least this often (seconds) while the scheduler runs."""


def job_status(engine: Any) -> list[JobStatus]:
    """Every job's status as metrics and systemd's STATUS= need it: the engine surface's."""
    return engine.status()


def timestamp(when: dt.datetime | None) -> float | None:
    """Seconds since the epoch; a naive time is local time (as the engine writes it)."""
    return None if when is None else when.timestamp()


# -- what is kept in the state file -----------------------------------------------------------------


def kept(state: dict[str, Any]) -> dict[str, Any]:
    """The metrics section of the state (created empty)."""
    section = state.get(STATE_KEY)
    if not isinstance(section, dict):
        section = state[STATE_KEY] = {}
    for key in ("runs_total", "last_success", "last_duration_s"):
        if not isinstance(section.get(key), dict):
            section[key] = {}
    return section


def count(state: dict[str, Any], records: Iterable[dict[str, Any]]) -> None:
    """Add runs that ended (history records, `skipped` included) to the kept counts."""
    section = kept(state)
    for record in records:
        name, status = record.get("job_name"), record.get("status")
        if not isinstance(name, str) or status not in STATUSES:
            continue
        runs = section["runs_total"].setdefault(name, {})
        runs[status] = int(runs.get(status, 0)) + 1
        if status == "skipped":
            continue
        if isinstance(record.get("duration_s"), (int, float)):
            section["last_duration_s"][name] = record["duration_s"]
        if status == "success":
            section["last_success"][name] = record.get("start_time")


def seed_from_history(state: dict[str, Any], log_dir: Path, statuses: list[JobStatus]) -> None:
    """For jobs the metrics section knows nothing of yet: their last success and last duration
    from the history files (newest first; a job that never succeeded is noted as such, so its
    history is read only once)."""
    from insect_console.history import HistoryQuery, HistoryReader

    section = kept(state)
    for job in statuses:
        if job.name in section["last_success"]:
            continue
        success = duration = None
        if job.last_status == "success" and job.last_run is not None:  # the state knows it: no need to look far
            success = job.last_run.isoformat(timespec="milliseconds")
        for record in HistoryReader(log_dir).records(HistoryQuery(job=job.name, limit=None)):
            if record.get("status") == "skipped":
                continue
            if duration is None and isinstance(record.get("duration_s"), (int, float)):
                duration = record["duration_s"]
            if success is None and record.get("status") == "success":
                success = record.get("start_time")
            if success is not None and duration is not None:
                break
        section["last_success"][job.name] = success
        if duration is not None:
            section["last_duration_s"].setdefault(job.name, duration)


# -- the file ---------------------------------------------------------------------------------------


class MetricsFile:
    """Renders and writes the textfile; a failing write is logged once per outage."""

    def __init__(self) -> None:
        self._outage = Outage()
        self.writes = 0

    def write(self, path: Path, statuses: list[JobStatus], section: dict[str, Any], *, up: bool, started: float | None) -> bool:
        from prometheus_client import CollectorRegistry, write_to_textfile

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(statuses, section, up, started))
        try:
            write_to_textfile(str(path), registry)
            os.chmod(path, 0o644)  # node_exporter runs as another user (prometheus)
        except OSError as e:
            if self._outage.failed():
                log.error("can't write the metrics file %s: %s (runs go on; metrics are stale until this is fixed)", path, e.strerror or e)
            return False
        if self._outage.worked():
            log.warning("the metrics file is written again")
        self.writes += 1
        return True


class _Collector:
    def __init__(self, statuses: list[JobStatus], section: dict[str, Any], up: bool, started: float | None) -> None:
        self.statuses, self.section, self.up, self.started = statuses, section, up, started

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"insect_console_{name}", doc, labels=["job"])

        up = GaugeMetricFamily("insect_console_up", "1 while the insect-console scheduler runs; 0 written when it stops")
        up.add_metric([], 1 if self.up else 0)
        yield up
        if self.started is not None:
            start = GaugeMetricFamily("insect_console_scheduler_start_time_seconds", "When the scheduler started (Unix time)")
            start.add_metric([], self.started)
            yield start

        runs = CounterMetricFamily("insect_console_runs", "Runs that ended, by status (kept in the state file since metrics were switched on)", labels=["job", "status"])
        last_run = gauge("last_run_timestamp_seconds", "Start of the job's last run (Unix time)")
        last_success = gauge("last_success_timestamp_seconds", "Start of the job's last successful run (Unix time)")
        duration = gauge("last_duration_seconds", "How long the job's last run took")
        failures = gauge("consecutive_failures", "Failed runs (error or timeout) in a row")
        running = gauge("running", "1 while the job runs")
        next_run = gauge("next_run_timestamp_seconds", "When the job runs next (Unix time); absent for a disabled job")
        enabled = gauge("enabled", "1 for an enabled job")
        counts = self.section.get("runs_total", {})
        for job in self.statuses:
            labels = [job.name]
            for status in STATUSES:
                runs.add_metric([job.name, status], float(counts.get(job.name, {}).get(status, 0)))
            if job.last_run is not None:
                last_run.add_metric(labels, timestamp(job.last_run))
            success = parse_local(self.section.get("last_success", {}).get(job.name))
            if success is not None:
                last_success.add_metric(labels, timestamp(success))
            took = self.section.get("last_duration_s", {}).get(job.name)
            if isinstance(took, (int, float)):
                duration.add_metric(labels, float(took))
            failures.add_metric(labels, job.error_count)
            running.add_metric(labels, 1 if job.running and self.up else 0)
            if job.next_run is not None and self.up:
                next_run.add_metric(labels, timestamp(job.next_run))
            enabled.add_metric(labels, 1 if job.enabled else 0)
        yield from (runs, last_run, last_success, duration, failures, running, next_run, enabled)
