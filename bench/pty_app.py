"""The console on a pseudo-terminal: what it drew, and when, read from the terminal stream.

Textual needs a real terminal; this gives it one of a fixed size and keeps what it writes (the
escape sequences stripped, each chunk with the time it arrived), so a figure can tell when some
text first appeared on the screen, and send keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from bench.procs import Procs, child_env


# -- a pseudo-terminal for the console --------------------------------------------------

_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[^\x1b]*\x1b\\|\x1b[@-Z\\-_]|\x1b[()][0-9A-Za-z]|[\x00-\x08\x0e-\x1f]")


class PtyApp:
    """A program on a pseudo-terminal of `cols` x `rows`, its output drained on a thread.

    Output is kept as text with the escape sequences stripped (enough to see what was drawn:
    Textual writes a cell's text in one piece), with the time each chunk arrived, so
    `wait_for` can say when some text first appeared. At most `keep` bytes are kept.
    """

    def __init__(self, procs: Procs, argv: Sequence[str], cwd: Path, cols: int = 80, rows: int = 24, keep: int = 4_000_000,
                 preexec: Callable[[], None] | None = None) -> None:
        self.procs = procs
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = child_env({"TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows), "COLORTERM": "truecolor"})
        env.pop("TEXTUAL", None)

        def make_controlling_tty() -> None:  # runs in the child, after setsid
            if preexec is not None:
                preexec()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.spawned_at = time.perf_counter()
        self.proc = procs.spawn(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=make_controlling_tty)
        os.close(slave)
        self.pid = self.proc.pid
        self._keep = keep
        self._chunks: list[tuple[float, int, str]] = []  # (perf_counter, offset, text)
        self._reads: list[float] = []  # perf_counter of every read, escape sequences only or not
        self._text = ""
        self._offset = 0  # total text length ever seen
        self._cond = threading.Condition()
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        pending = b""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            now = time.perf_counter()
            if not data:
                with self._cond:
                    self._cond.notify_all()
                return
            self.bytes_read += len(data)
            self._reads.append(now)
            if len(self._reads) > 200_000:
                del self._reads[:100_000]
            data = pending + data
            # keep a possibly cut escape sequence for the next read
            cut = data.rfind(b"\x1b")
            if cut >= 0 and len(data) - cut < 64 and not _ESCAPES.match(data, cut):
                data, pending = data[:cut], data[cut:]
            else:
                pending = b""
            text = _ESCAPES.sub(b"", data).decode("utf-8", "replace")
            with self._cond:
                self._text += text
                self._offset += len(text)
                if len(self._text) > self._keep:
                    self._text = self._text[-self._keep // 2:]
                self._chunks.append((now, self._offset, text))
                if len(self._chunks) > 10000:
                    del self._chunks[:5000]
                self._cond.notify_all()

    @property
    def offset(self) -> int:
        with self._cond:
            return self._offset

    def text_since(self, offset: int) -> str:
        with self._cond:
            start = max(0, len(self._text) - (self._offset - offset))
            return self._text[start:]

    def wait_for(self, needles: Iterable[str], timeout: float, since: int = 0) -> float | None:
        """The perf_counter time by which all `needles` had appeared after text offset `since`."""
        needles = list(needles)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self.text_since(since)
                if all(n in text for n in needles):
                    # when was the last of them first complete? walk the chunks
                    for when, end, _t in self._chunks:
                        if end <= since:
                            continue
                        seen = self._text[max(0, len(self._text) - (self._offset - since)): max(0, len(self._text) - (self._offset - end))]
                        if all(n in seen for n in needles):
                            return when
                    return time.perf_counter()
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(left, 0.1))

    def reads_between(self, start: float, end: float) -> list[float]:
        """The perf_counter times at which output arrived between `start` and `end` (a frame is one
        or a few reads within a millisecond or two; a gap between reads is time nothing was drawn)."""
        with self._cond:
            return [t for t in self._reads if start <= t <= end]

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def stop(self) -> int | None:
        """Quit with ctrl+q ("s" = stop the runs, if it asks), and end it if it does not go."""
        for keys, wait in ((b"\x11", 3), (b"s", 5)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                self.send(keys)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
        rc = self.procs.end(self.proc, sig=signal.SIGTERM, grace=10)
        with contextlib.suppress(OSError):
            os.close(self.master)
        self._thread.join(2)
        return rc
