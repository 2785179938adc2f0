"""Notice changes to the config file at once, without polling: inotify on its directory.

Falls back to comparing the file's mtime (the engine then checks every second) where inotify
is not available.
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
from typing import Callable

log = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE
_HEADER = struct.Struct("iIII")


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 - present on Linux only
        return libc
    except (OSError, AttributeError):
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
                _wd, _mask, _cookie, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + length].rstrip(b"\0").decode(errors="replace")
                offset += _HEADER.size + length
                if name in self.names:
                    changed.add(name)
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
