"""Bounded logs: old history files and run outputs are pruned so an SD card never fills up.

Runs at scheduler start and once a day. Never touches today's history file or the output of a
run in progress. Defaults (a year of history, 30 days and at most 1 GiB of run output) fit a
16 GB card beside the station's own data.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from insect_console.fileio import Outage
from insect_console.history import history_files

log = logging.getLogger("insect_console.retention")

_DAY_DIR = re.compile(r"\d{8}")


@dataclass
class PruneReport:
    history_files: int = 0
    output_files: int = 0
    bytes_freed: int = 0
    output_bytes_left: int = 0

    def __bool__(self) -> bool:
        return bool(self.history_files or self.output_files)


_failing = Outage()
"""Whether pruning is failing (in part), so that it is logged once, not at every prune."""


def prune(log_dir: Path, *, today: dt.date, history_keep_days: int, output_keep_days: int, output_max_bytes: int, protected: set[str] | frozenset[str] = frozenset()) -> PruneReport:
    """Remove old history files and run output, then the oldest output past `output_max_bytes`.

    A part that fails (a keep-days value no date can be computed from, a directory that
    vanishes under it) is left out and the rest still done: the size cap is always applied.
    The failure is logged once, and once more when a prune works again.
    """
    report = PruneReport()
    problems: list[str] = []
    oldest_history = _days_before(today, history_keep_days, "history_keep_days", problems)
    if oldest_history is not None:
        for day, path in history_files(log_dir):
            if day < oldest_history and day != today:
                report.bytes_freed += _remove(path)
                report.history_files += 1

    output_root = log_dir / "output"
    oldest_output = _days_before(today, output_keep_days, "output_keep_days", problems)
    files: list[tuple[str, float, int, Path]] = []
    for day_dir in sorted(_day_dirs(output_root)):
        try:
            day = dt.datetime.strptime(day_dir.name, "%Y%m%d").date()
        except ValueError:
            continue
        try:
            entries = list(os.scandir(day_dir))
        except OSError as e:
            problems.append(f"can't list {day_dir}: {e.strerror}")
            continue
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                path = Path(entry.path)
                if str(path) in protected:
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since the listing
            if oldest_output is not None and day < oldest_output:
                report.bytes_freed += _remove(path)
                report.output_files += 1
            else:
                files.append((day_dir.name, st.st_mtime, st.st_size, path))
    total = sum(size for _, _, size, _ in files)
    for _, _, size, path in sorted(files):
        if total <= output_max_bytes:
            break
        _remove(path)
        total -= size
        report.bytes_freed += size
        report.output_files += 1
    report.output_bytes_left = total + sum(_size(p) for p in protected)
    for day_dir in _day_dirs(output_root):
        if day_dir.name != f"{today:%Y%m%d}":
            try:
                day_dir.rmdir()  # only when empty
            except OSError:
                pass
    if report:
        log.info(
            "pruned %d history file(s) and %d run output file(s), %.1f MB freed",
            report.history_files,
            report.output_files,
            report.bytes_freed / 1e6,
        )
    if problems:
        if _failing.failed():
            log.error("pruning %s only in part: %s (the size cap was applied; logged once until a prune works again)", log_dir, "; ".join(problems))
    elif _failing.worked():
        log.info("pruning %s works again", log_dir)
    return report


def _days_before(today: dt.date, keep_days: int, name: str, problems: list[str]) -> dt.date | None:
    """The oldest day kept, or None (keep every day) when no date can be computed from it."""
    try:
        return today - dt.timedelta(days=keep_days - 1)
    except (OverflowError, ValueError, TypeError):
        problems.append(f"{name} is too large to compute a date from, so no file is removed by age")
        return None


def _day_dirs(root: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and _DAY_DIR.fullmatch(e.name)]
    except OSError:
        return []


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _remove(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.warning("can't remove %s: %s", path, e.strerror)
        return 0


def disk_free(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class LogKeeper:
    """Keeps the log directory within the retention settings for a running engine.

    Prunes once a day (the first wake-up of each day, so also at start), and at once when the run
    output written since the last prune passes `output_max_mb`: a chatty day can't fill the card
    before midnight. Pruning runs on a thread of its own; runs in progress are never touched.
    """

    def __init__(self, log_dir: Callable[[], Path], settings: Callable[[], Any], protected: Callable[[], set[str]]) -> None:
        self._log_dir = log_dir
        self._settings = settings
        self._protected = protected
        self._lock = threading.Lock()
        self._output_bytes = 0  # run output on disk, as of the last prune plus runs since
        self._pruning = False
        self._pruned_on: dt.date | None = None

    def daily(self, today: dt.date) -> None:
        """Called on every wake-up of the loop: prunes on the first one of a day."""
        if self._pruned_on != today:
            self._pruned_on = today
            self._prune_soon(today)

    def count_output(self, output_file: str | None, today: dt.date) -> None:
        """Add a finished run's output; past `output_max_mb`, prune at once, not at midnight."""
        try:
            size = os.path.getsize(output_file) if output_file else 0
        except OSError:
            size = 0
        with self._lock:
            self._output_bytes += size
            over = self._output_bytes > self._settings().output_max_mb * 1024 * 1024
        if over:
            self._prune_soon(today)

    def _prune_soon(self, today: dt.date) -> None:
        with self._lock:
            if self._pruning:
                return
            self._pruning = True
        threading.Thread(target=self.prune, args=(today,), name="prune", daemon=True).start()

    def prune(self, today: dt.date) -> PruneReport | None:
        """Apply the retention settings now (in this thread)."""
        s = self._settings()
        try:
            report = prune(
                self._log_dir(),
                today=today,
                history_keep_days=s.history_keep_days,
                output_keep_days=s.output_keep_days,
                output_max_bytes=s.output_max_mb * 1024 * 1024,
                protected=self._protected(),
            )
            with self._lock:
                self._output_bytes = report.output_bytes_left
            return report
        except Exception:
            log.exception("pruning the logs failed")
            return None
        finally:
            with self._lock:
                self._pruning = False
