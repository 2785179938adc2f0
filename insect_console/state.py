"""Run state (last run, status, failure streak, runs in progress), kept apart from the config.

The daemon and the CLI both write it, so every change is a read-modify-write under a lock,
written atomically. A corrupt file is reported and kept aside; the engine then starts afresh.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from insect_console.errors import ConfigError
from insect_console.fileio import NotRegularFile, atomic_write, check_private_file, locked, open_regular, set_aside

log = logging.getLogger(__name__)
T = TypeVar("T")


def empty_state() -> dict[str, Any]:
    return {"version": 1, "jobs": {}, "running": {}}


class StateStore:
    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path
        self._mtime: float | None = None
        self._cache: dict[str, Any] = empty_state()

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

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply `change` to the state under the state lock and write it back atomically."""
        with locked(self.lock_path):
            self._mtime = None
            state = self._read_file()
            result = change(state)
            atomic_write(self.path, json.dumps(state, indent=1, sort_keys=True).encode())
            self._cache, self._mtime = state, None
            return result

    def job(self, name: str) -> dict[str, Any]:
        return self.read()["jobs"].get(name, {})
