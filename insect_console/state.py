"""Run state (last run, status, failure streak, runs in progress), kept apart from the config.

The daemon and the CLI both write it, so every change is a read-modify-write under a lock,
written atomically. A corrupt file is reported and kept aside; the engine then starts afresh.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from insect_console.errors import ConfigError
from insect_console.fileio import NotRegularFile, Outage, atomic_write, check_private_file, locked, open_regular, set_aside
from insect_console.textfmt import parse_local

log = logging.getLogger(__name__)
T = TypeVar("T")


def empty_state() -> dict[str, Any]:
    return {"version": 1, "jobs": {}, "running": {}}


def last_runs(state: Mapping[str, Any], fallback: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dt.datetime]:
    """Last start time per job (naive local), so interval grids carry over a restart.

    `fallback` is run state found in a spec-format JSON config, for jobs the state file lacks.
    """
    out = {}
    for name, js in {**(fallback or {}), **state.get("jobs", {})}.items():
        when = parse_local(js.get("last_run")) if isinstance(js, Mapping) else None
        if when is not None:
            out[name] = when
    return out


def ran_this_boot(state: Mapping[str, Any], boot_id: str) -> set[str]:
    """Boot jobs whose last scheduled run was in the boot `boot_id` (the kernel's boot id)."""
    return {name for name, seen in state.get("boot_runs", {}).items() if seen == boot_id}


def running_entry(job_name: str, trigger: str, start: str, output_file: str, owner_create_time: float | None) -> dict[str, Any]:
    """A run's entry in the `running` table, written before its process exists: a crash from
    then on leaves the entry, and recovery finds the run's processes by their marker even
    before the pid is known (it is added once the run has settled)."""
    return {
        "job_name": job_name, "pid": None, "create_time": None, "owner_pid": os.getpid(), "owner_create_time": owner_create_time,
        "start_time": start, "output_file": output_file, "trigger": trigger,
    }


def record_finished(state: dict[str, Any], run_id: str, record: Mapping[str, Any], error_count: int, last_due: dt.datetime | None = None) -> None:
    """A finished run leaves the `running` table and becomes its job's last run. `last_due` is
    the due time a scheduled run stood for: catch-up counts missed due times from it."""
    state["running"].pop(run_id, None)
    js = state["jobs"].setdefault(record["job_name"], {})
    js.update(
        last_run=record["start_time"], last_status=record["status"], error_count=error_count,
        last_duration_s=record.get("duration_s"), last_output_file=record.get("output_file"),
    )
    if last_due is not None:
        js["last_due"] = last_due.isoformat(timespec="seconds")


def record_skipped(state: dict[str, Any], record: Mapping[str, Any]) -> None:
    js = state["jobs"].setdefault(record["job_name"], {})
    js["skipped"] = js.get("skipped", 0) + 1
    js["last_skipped"] = record["start_time"]


class StateStore:
    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path
        self._mtime: float | None = None
        self._cache: dict[str, Any] = empty_state()
        self._outage = Outage()

    def read(self) -> dict[str, Any]:
        """The current state (cached while the file is unchanged)."""
        try:
            st = self.path.lstat()  # a symlink's own time: it is never followed
        except FileNotFoundError:
            return empty_state()
        if self._mtime == st.st_mtime_ns:
            return self._cache
        state = self._read_file()
        self._cache, self._mtime = state, st.st_mtime_ns
        return state

    def _read_file(self) -> dict[str, Any]:
        """The state file's contents. A FIFO, directory, device or symlink in its place is set
        aside like a corrupt file (it is opened without blocking and without following links)."""
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return empty_state()
        except NotRegularFile as e:
            try:
                set_aside(self.path, "state file", e.strerror)
            except OSError:
                pass
            return empty_state()
        with os.fdopen(fd, "rb") as f:
            try:
                check_private_file(self.path, "state file", os.fstat(f.fileno()))
            except PermissionError as e:
                raise ConfigError(str(e)) from None
            raw = f.read()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict) or not isinstance(data.get("running"), dict):
                raise ValueError("missing jobs/running tables")
            return data
        except FileNotFoundError:
            return empty_state()
        except (ValueError, UnicodeDecodeError) as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(self.path, aside)
                log.error("state file %s is corrupt (%s); kept aside as %s, starting from the config", self.path, e, aside.name)
            except OSError:
                log.error("state file %s is corrupt (%s); starting from the config", self.path, e)
            return empty_state()

    def update(self, change: Callable[[dict[str, Any]], T], durable: bool = True) -> T:
        """Apply `change` to the state under the state lock and write it back atomically
        (`durable`: and flushed to the card, see fileio.atomic_write)."""
        home = self.path.parent  # the config directory: never made here (see fileio.DirectoryGone)
        with locked(self.lock_path, upto=home):
            self._mtime = None
            state = self._read_file()
            result = change(state)
            data = json.dumps(state, indent=1, sort_keys=True).encode()
            try:
                atomic_write(self.path, data, durable=durable, upto=home)
            except IsADirectoryError:  # it became one since it was read: set it aside, as a read does
                set_aside(self.path, "state file", "is a directory, not a regular file")
                atomic_write(self.path, data, durable=durable, upto=home)
            self._cache, self._mtime = state, None
            return result

    def seed(self, fallback: Mapping[str, Mapping[str, Any]]) -> None:
        """Take run state found elsewhere (a spec-format JSON config's own fields) for the jobs
        this file does not know yet."""
        if fallback:
            self.try_update(lambda state: [state["jobs"].setdefault(name, dict(fields)) for name, fields in fallback.items()])

    def try_update(self, change: Callable[[dict[str, Any]], T], durable: bool = True) -> T | None:
        """`update` for the engine: a failure (disk full) is logged once per outage and runs go
        on; returns None when the change could not be saved."""
        try:
            result = self.update(change, durable)
        except OSError as e:
            if self._outage.failed():
                log.error("can't write state file %s: %s (runs go on; state is not saved until this is fixed)", self.path, e.strerror)
            return None
        if self._outage.worked():
            log.warning("state file writes work again")
        return result

    def job(self, name: str) -> dict[str, Any]:
        return self.read()["jobs"].get(name, {})
