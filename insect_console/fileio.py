"""Safe file writes: an inter-process lock, then temp file, fsync and atomic rename."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator


class Outage:
    """Whether writes to one place are failing (a full disk), so that the outage is logged once
    when it starts and once when it ends, however many threads see it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False

    def failed(self) -> bool:
        """Note a failed write; True for the first one of an outage."""
        with self._lock:
            first, self._down = not self._down, True
        return first

    def worked(self) -> bool:
        """Note a write that worked; True for the first one after an outage."""
        if not self._down:  # the common case, without the lock
            return False
        with self._lock:
            ended, self._down = self._down, False
        return ended


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` and any missing parents as 0700 (logs and locks are nobody else's)."""
    if directory.is_dir():
        return
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass


def check_private_file(path: Path, what: str) -> None:
    """Refuse a file others could have written (as cron refuses such crontabs).

    Raises PermissionError with a one-line message saying how to fix it.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if st.st_uid != os.geteuid():
        raise PermissionError(f"{path}: the {what} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); refusing to use it (chown it to yourself)")
    if st.st_mode & 0o022:
        raise PermissionError(f"{path}: the {what} is writable by group or others; refusing to use it (fix: chmod 600 {path})")


@contextlib.contextmanager
def locked(lock_path: Path, *, blocking: bool = True) -> Iterator[int]:
    """Hold an exclusive `flock` on `lock_path` (created 0600) for the block.

    With `blocking=False`, raises BlockingIOError at once when another holder has it.
    """
    ensure_private_dir(lock_path.parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class InstanceLock:
    """One holder at a time for a process's lifetime: one scheduler per config.

    A `flock` on a file in the config's runtime directory, with the holder's pid written in it
    so a second scheduler (or `list`) can say who holds it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    @staticmethod
    def holder(path: Path) -> int | None:
        """The pid of the process holding the lock at `path`, 0 if unknown, None when nobody holds it."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return None
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else 0
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a torn one."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a power cut must not bring the old file back)."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError as e:  # some filesystems refuse fsync on directories
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(dfd)


def append_line(path: Path, line: bytes, mode: int = 0o600) -> None:
    """Append one line with a single write on an O_APPEND descriptor, then fsync.

    O_APPEND makes each write land at the end as one piece, so several processes can append
    to the same file without interleaving their records. A torn last line (a power cut during
    an earlier append) is ended first, so the new record starts on a line of its own; a write
    cut short (disk full) is taken back, so no half record is left for the next one to join.
    """
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written = 0
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write (disk full?)")
            os.fsync(fd)
        except OSError:
            if written and os.fstat(fd).st_size == size + written:
                os.ftruncate(fd, size)  # nobody appended after us: take the partial record back
            raise
    finally:
        os.close(fd)
