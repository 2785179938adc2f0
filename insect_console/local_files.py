"""What a console on the station itself reads and changes directly: the config file, the
history files and the run output files. Shared by `Engine` and by `RemoteEngine` attached to a
daemon on the same machine (the files are the same ones the daemon writes).

Config changes are written under the config lock, atomically, then `reload()` applies them.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any, Mapping

from insect_console import history, runoutput
from insect_console.clock import Clock
from insect_console.config import Config, ConfigStore, Settings
from insect_console.jobs import Job
from insect_console.scheduling import upcoming
from insect_console.station import read_boot, site_for
from insect_console.triggers import Boot, Site
from insect_console.sysstats import PsutilStats, StatsProvider


class LocalFiles:
    store: ConfigStore
    config: Config
    clock: Clock

    def reload(self) -> None:
        raise NotImplementedError

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def log_dir(self) -> Path:
        return self.store.resolve(self.settings.log_dir)

    @property
    def where(self) -> str:
        return self.store.display_path

    def stats_provider(self) -> StatsProvider:
        """This machine's stats: it is the station."""
        return PsutilStats(self.log_dir)

    # -- config changes ----------------------------------------------------------------

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

    @functools.cached_property
    def boot(self) -> Boot:
        """This boot of the machine (an Engine reads it once when it is made)."""
        return read_boot(self.clock)

    def site(self) -> Site:
        """Where and in which zone the station is, from the settings, on this machine."""
        return site_for(self.settings, self.boot)

    def preview(self, job: Job, count: int = 5) -> list[dt.datetime]:
        return upcoming(job.replace(enabled=True), self.clock, count=count, site=self.site())

    # -- history and output ----------------------------------------------------------------

    def history(self, query: history.HistoryQuery) -> history.HistoryCursor:
        return history.HistoryCursor(self.log_dir, query)

    def run_record(self, slim_record: Mapping[str, Any]) -> dict[str, Any] | None:
        return history.find_record(self.log_dir, dict(slim_record))

    def recent_results(self, names: list[str], width: int, scan: int = 5000) -> dict[str, list[tuple[str, float | None]]]:
        return history.recent_results(self.log_dir, names, width, scan)

    def output_tail(self, path: str, max_lines: int) -> tuple[list[str], bool, int]:
        lines, more = runoutput.tail_lines(path, max_lines)
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        return lines, more, size

    def output_since(self, path: str, offset: int) -> tuple[list[str], int]:
        return runoutput.read_since(path, offset)
