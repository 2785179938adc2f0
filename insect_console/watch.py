"""Notice changes to the config file: inotify on its directory, or polling where there is none.

One interface (`start()`, `stop()`, `on_change(name)` called on the watcher's own thread), two
implementations chosen by `get_watcher()`: `FileWatcher` wakes only when something changed;
`PollWatcher` compares mtimes every second where inotify is not available.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import struct
import threading
from pathlib import Path
from typing import Callable, Protocol

log = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
GONE = ""
"""The name `on_change` gets when the watched directory itself was moved or deleted."""
_HEADER = struct.Struct("iIII")


class Watcher(Protocol):
    def start(self) -> bool:
        """Start watching; False when this kind of watcher can't work here."""

    def stop(self) -> None: ...


def get_watcher(directory: Path, names: set[str], on_change: Callable[[str], None]) -> Watcher:
    """A started watcher: inotify where the kernel offers it, else a poller."""
    watcher: Watcher = FileWatcher(directory, names, on_change)
    if not watcher.start():
        log.info("inotify unavailable: checking the config for changes every second")
        watcher = PollWatcher(directory, names, on_change)
        watcher.start()
    return watcher


def _libc():
    # libc.so.6 first: find_library() runs `ldconfig -p` in a subprocess at every daemon start
    for find in (lambda: "libc.so.6", lambda: ctypes.util.find_library("c")):
        try:
            libc = ctypes.CDLL(find(), use_errno=True)
            libc.inotify_init1  # noqa: B018 - present on Linux only
            return libc
        except (OSError, AttributeError, TypeError):
            continue
    return None


class FileWatcher:
    """Calls `on_change(name)` (on its own thread) when one of `names` in `directory` changes."""

    def __init__(self, directory: Path, names: set[str], on_change: Callable[[str], None]) -> None:
        self.directory = directory
        self.names = names
        self.on_change = on_change
        self._fd: int | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start watching; False when inotify is unavailable (the caller then polls)."""
        libc = _libc()
        if libc is None:
            return False
        fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if fd < 0:
            return False
        if libc.inotify_add_watch(fd, os.fsencode(self.directory), _MASK) < 0:
            os.close(fd)
            return False
        self._fd = fd
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        assert self._fd is not None
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                continue
            changed = set()
            offset = 0
            while offset + _HEADER.size <= len(data):
                _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + length].rstrip(b"\0").decode(errors="replace")
                offset += _HEADER.size + length
                if name in self.names:
                    changed.add(name)
                elif mask & (IN_MOVE_SELF | IN_DELETE_SELF):
                    changed.add(GONE)
            for name in changed:
                try:
                    self.on_change(name)
                except Exception:
                    log.exception("watch callback failed")

    def stop(self) -> None:
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = None


class PollWatcher:
    """Calls `on_change(name)` when the mtime (or presence) of one of `names` changes; checks
    every `interval` seconds on a thread of its own."""

    def __init__(self, directory: Path, names: set[str], on_change: Callable[[str], None], interval: float = 1.0) -> None:
        self.directory = directory
        self.names = names
        self.on_change = on_change
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _mtimes(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for name in self.names:
            try:
                out[name] = (self.directory / name).stat().st_mtime_ns
            except OSError:
                out[name] = None
        return out

    def start(self) -> bool:
        seen = self._mtimes()

        def run() -> None:
            nonlocal seen
            while not self._stop.wait(self.interval):
                now = self._mtimes()
                for name in sorted(n for n in now if now[n] != seen.get(n)):
                    try:
                        self.on_change(name)
                    except Exception:
                        log.exception("watch callback failed")
                seen = now

        self._thread = threading.Thread(target=run, name="config-poll", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
