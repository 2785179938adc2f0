"""Safe file writes: an inter-process lock, then temp file, fsync and atomic rename.

Every file we read or write is opened without blocking (a FIFO in its place can't hang us) and,
but for the config a person may symlink, without following a symlink; anything but a regular
file is refused (the config) or set aside as `NAME.corrupt-TIMESTAMP` with one ERROR line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger("insect_console.fileio")


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


class DirectoryGone(FileNotFoundError):
    """A directory we write under is not there and must not be made: a config directory moved
    away (being restored from a backup) would otherwise come back empty, under the copy."""

    def __init__(self, directory: Path) -> None:
        super().__init__(errno.ENOENT, "the directory is gone (moved away?); not making an empty one in its place", str(directory))


def ensure_private_dir(directory: Path, upto: Path | None = None) -> None:
    """Create `directory` and any missing parents as 0700 (logs and locks are nobody else's).

    With `upto` (an ancestor, the config directory): only the directories below it are made;
    when it is missing, raises DirectoryGone."""
    if directory.is_dir():
        return
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        if upto is not None and parent == upto:
            raise DirectoryGone(upto)
        missing.append(parent)
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass


class NotRegularFile(OSError):
    """A FIFO, directory, device, socket or symlink where one of our files belongs."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a directory", ...)."""
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def open_regular(path: Path | str, flags: int, mode: int = 0o600, *, follow: bool = False) -> int:
    """`os.open` for one of our files: never blocks (O_NONBLOCK: a FIFO opens at once), never
    follows a symlink (O_NOFOLLOW, unless `follow`), and returns only a regular file's descriptor.

    Anything else raises NotRegularFile (an OSError): the caller refuses it or sets it aside.
    """
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, mode)
    except OSError as e:
        # ELOOP: a symlink under O_NOFOLLOW; ENXIO: a FIFO without a reader, a socket; EISDIR
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP, errno.ENOTDIR):
            try:
                st = os.lstat(path) if not follow else os.stat(path)
            except OSError:
                raise e from None
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(path, file_kind(st.st_mode)) from None
        raise
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(path, file_kind(st.st_mode))
    return fd  # O_NONBLOCK stays: it changes nothing for a regular file's reads and writes


def read_regular(path: Path | str, *, follow: bool = False) -> bytes:
    """The whole of one of our files (see `open_regular`); FileNotFoundError if it is missing."""
    fd = open_regular(path, os.O_RDONLY, follow=follow)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def read_tail(path: Path | str, limit: int) -> bytes:
    """The last `limit` bytes of a regular file; b"" for anything else or a missing file."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - limit))
        return f.read(limit)


def set_aside(path: Path, what: str, reason: str) -> Path | None:
    """Rename a bad file (or FIFO, directory, symlink: the entry itself, never its target) to
    `NAME.corrupt-YYYYMMDD-HHMMSS`, with one ERROR line. None if it was gone already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while os.path.lexists(aside):
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None  # another thread or process set it aside first
    except OSError as e:
        log.error("%s %s %s; can't set it aside (%s)", what, path, reason, e.strerror)
        raise
    log.error("%s %s %s; set aside as %s", what, path, reason, aside.name)
    return aside


def open_own(path: Path, flags: int, what: str, mode: int = 0o600) -> int:
    """`open_regular` with O_CREAT for a file we write (history, output, locks): a FIFO,
    directory or symlink in its place is set aside (one ERROR line) and a file of our own is
    made, so the writes go on."""
    flags |= os.O_CREAT
    try:
        return open_regular(path, flags, mode)
    except NotRegularFile as e:
        set_aside(path, what, e.strerror)
    return open_regular(path, flags, mode)


def check_private_file(path: Path, what: str, st: os.stat_result | None = None) -> None:
    """Refuse a file others could have written (as cron refuses such crontabs).

    `st` is the file's fstat when it is open already. Raises PermissionError with a one-line
    message saying how to fix it.
    """
    if st is None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
    if st.st_uid != os.geteuid():
        raise PermissionError(f"{path}: the {what} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); refusing to use it (chown it to yourself)")
    if st.st_mode & 0o022:
        raise PermissionError(f"{path}: the {what} is writable by group or others; refusing to use it (fix: chmod 600 {path})")


def check_private_dir(path: Path, what: str) -> None:
    """Refuse a directory we write into that group or others can write into too (they could put
    a symlink or a FIFO there for us to write through), or that another user owns.

    Raises PermissionError with a one-line message saying how to fix it. A missing directory
    passes: it is created 0700.
    """
    try:
        st = path.stat()  # the directory a person named, through a symlink if it is one
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"{path}: the {what} is {file_kind(st.st_mode)}, not a directory")
    if st.st_uid not in (os.geteuid(), 0):
        raise PermissionError(f"{path}: the {what} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); refusing to write into it (chown it to yourself)")
    if st.st_mode & 0o022:
        raise PermissionError(f"{path}: the {what} is writable by group or others; refusing to write into it (fix: chmod 700 {path})")


@contextlib.contextmanager
def locked(lock_path: Path, *, blocking: bool = True, upto: Path | None = None) -> Iterator[int]:
    """Hold an exclusive `flock` on `lock_path` (created 0600) for the block.

    With `blocking=False`, raises BlockingIOError at once when another holder has it. `upto`:
    as for ensure_private_dir.
    """
    fd = open_lock(lock_path, upto)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def open_lock(lock_path: Path, upto: Path | None = None) -> int:
    """A lock file's descriptor (created 0600; a FIFO or symlink in its place is set aside)."""
    ensure_private_dir(lock_path.parent, upto)
    return open_own(lock_path, os.O_RDWR, "lock file")


class InstanceLock:
    """One holder at a time for a process's lifetime: one scheduler per config.

    A `flock` on a file in the config's runtime directory, with the holder's pid written in it
    so a second scheduler (or `list`) can say who holds it.
    """

    def __init__(self, path: Path, upto: Path | None = None) -> None:
        self.path = path
        self.upto = upto  # as for ensure_private_dir: the config directory is never made here
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fd = open_lock(self.path, self.upto)
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

    def replaced(self) -> bool:
        """Whether the file at `path` is no longer the one this lock holds: its directory was
        moved away and another put in its place (a config directory restored from a backup),
        so a second scheduler would find it free."""
        if self._fd is None:
            return False
        try:
            here, held = os.stat(self.path, follow_symlinks=False), os.fstat(self._fd)
        except OSError:
            return True
        return (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino)

    def renew(self, restored: bool) -> str:
        """After `replaced()`: take the lock at `path` anew. "held" (nothing was replaced),
        "waiting" (not `restored` yet: nothing is made in its place meanwhile), "renewed", or
        "taken" (another process holds the new file's lock)."""
        if not self.replaced():
            return "held"
        if not restored:
            return "waiting"
        fresh = InstanceLock(self.path, self.upto)
        try:
            if not fresh.acquire():
                return "taken"
        except DirectoryGone:  # moved away again
            return "waiting"
        self.release()
        self._fd, fresh._fd = fresh._fd, None
        return "renewed"

    @staticmethod
    def holder(path: Path) -> int | None:
        """The pid of the process holding the lock at `path`, 0 if unknown, None when nobody holds it."""
        try:
            fd = open_regular(path, os.O_RDONLY)
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


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True, upto: Path | None = None) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a torn one.

    `durable`: the data and the rename are on the card before this returns (two fsyncs). A write
    that only has to outlive a crash of this process, not a power cut (a run's entry while it
    runs), passes False and saves an SD card the flushes: the rename alone is atomic for every
    reader, and ext4 flushes a file renamed over another before the rename commits. `upto`:
    as for ensure_private_dir."""
    ensure_private_dir(path.parent, upto)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
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


def append_line(path: Path, line: bytes, mode: int = 0o600, what: str = "file") -> None:
    """Append one line with a single write on an O_APPEND descriptor, then fsync.

    O_APPEND makes each write land at the end as one piece, so several processes can append
    to the same file without interleaving their records. A torn last line (a power cut during
    an earlier append) is ended first, so the new record starts on a line of its own; a write
    cut short (disk full) is taken back, so no half record is left for the next one to join.
    A FIFO, directory or symlink at `path` is set aside, never written through (`open_own`).
    """
    ensure_private_dir(path.parent)
    fd = open_own(path, os.O_RDWR | os.O_APPEND, what, mode)
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
