"""Running one job: a subprocess in its own session, its output streamed, its tree ended on timeout.

stdout and stderr are read together with a selector (no deadlock on big output), cut at line
ends (a line without a newline is cut every `MAX_LINE` bytes, so a 100 MB line does not blow up
memory), written to the run's output file and handed to a listener as lines. The history record
keeps only a bounded tail.
"""

from __future__ import annotations

import codecs
import datetime as dt
import errno
import fcntl
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from insect_console import proctree
from insect_console.fileio import Outage, ensure_private_dir, open_own
from insect_console.jobs import Job

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
PIPE_SIZE = 1024 * 1024
"""Pipes are enlarged to this (F_SETPIPE_SZ), so a chatty job is read in few, big reads."""
READ_SIZE = PIPE_SIZE
BATCH_PAUSE = 0.01
STDERR_TAIL = 2048
MAX_WAIT = 3600.0
"""Longest single wait of a run's selector (epoll takes at most INT_MAX ms, about 24.8 days)."""
SETTLE = 0.1
"""Seconds into a run when its slower bookkeeping (state file with pid, fsynced) is done: not
while the job's process is starting up beside it, and not at all for a run that ends sooner."""
OutputListener = Callable[[str, list[str]], None]
"""Called from the run's thread with a stream name ("stdout"/"stderr") and new lines."""


@dataclass
class RunOutcome:
    status: str  # success | error | timeout | interrupted
    exit_code: int | None
    error: str | None
    output: str
    start: dt.datetime
    end: dt.datetime
    duration_s: float
    pid: int | None


class _Stream:
    """One pipe: bytes in, blocks of whole lines out, with a bounded tail of what went through.

    Lines are handed on as one block per read, not one object per line: a job printing 200 MB
    of short lines would otherwise cost the engine more CPU than the job itself.
    """

    def __init__(self, name: str, tail_limit: int) -> None:
        self.name = name
        self.pending = bytearray()
        self.tail = bytearray()
        self.tail_limit = tail_limit
        self.tail_cut = False  # whether older output fell out of the tail
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes, final: bool = False) -> bytes:
        """The whole lines in what came in so far; a line without its newline is let through
        every MAX_LINE bytes (and at the end), so memory stays bounded."""
        if self.pending:
            data = bytes(self.pending + data)
            self.pending.clear()
        cut = data.rfind(b"\n") + 1
        rest = len(data) - cut
        if final:
            cut = len(data)
        elif rest >= MAX_LINE:
            cut += rest - rest % MAX_LINE
        if cut < len(data):
            self.pending += data[cut:]
            data = data[:cut]
        if data and self.tail_limit:
            self.tail += data[-self.tail_limit :]
            if len(self.tail) > self.tail_limit or len(data) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]
                self.tail_cut = True
        return data

    def lines(self, block: bytes, final: bool = False) -> list[str]:
        """`block` as text lines without their newlines, none longer than MAX_LINE."""
        text = self.decoder.decode(block, final)  # a character cut at MAX_LINE is joined up
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if lines and max(map(len, lines)) > MAX_LINE:
            lines = [line[i : i + MAX_LINE] for line in lines for i in range(0, max(len(line), 1), MAX_LINE)]
        return lines

    def tail_text(self) -> str:
        tail = bytes(self.tail)
        start = 0
        while self.tail_cut and start < min(3, len(tail)) and 0x80 <= tail[start] < 0xC0:
            start += 1  # cut inside a character: start at the next one
        return tail[start:].decode("utf-8", "replace")


class JobRun:
    """One run of `job`. `execute()` blocks until it ends; `kill()` may be called from any thread."""

    def __init__(
        self,
        job: Job,
        *,
        run_id: str,
        timeout: float,
        kill_grace: float,
        output_file: Path | None = None,
        tail_bytes: int = 65536,
        output_cap: int | None = None,
        on_output: OutputListener | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.job = job
        self.run_id = run_id
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.output_file = output_file
        self.tail_bytes = tail_bytes
        self.output_cap = output_cap
        self.on_output = on_output
        self.base_dir = base_dir
        self.pid: int | None = None
        self.create_time: float | None = None
        self.started = threading.Event()
        self._kill_reason: tuple[str, str] | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._wake_lock = threading.Lock()
        self._argv = job.argv()
        self._env = self._environment()
        cwd = job.cwd
        if cwd and base_dir and not os.path.isabs(cwd):
            cwd = str(base_dir / cwd)
        self._cwd = cwd or (str(base_dir) if base_dir else None)

    @classmethod
    def for_job(cls, job: Job, settings, *, run_id: str, output_file: Path, on_output: OutputListener | None, base_dir: Path) -> "JobRun":
        """A run of `job` with the limits of the config's `settings` (timeout, grace, sizes)."""
        return cls(
            job, run_id=run_id, timeout=job.timeout or settings.default_timeout, kill_grace=settings.kill_grace, output_file=output_file,
            tail_bytes=settings.output_tail_bytes, output_cap=settings.output_max_run_mb * 1024 * 1024, on_output=on_output, base_dir=base_dir,
        )

    def _environment(self) -> dict[str, str]:
        """Built when the run is made, so a run prepared ahead of its due time only spawns then."""
        env = dict(os.environ)
        env.update(self.job.env)
        env[proctree.MARKER_ENV] = self.run_id
        env["INSECT_CONSOLE_JOB"] = self.job.name
        return env

    def discard(self) -> None:
        """Give back what a run that will not be executed holds (its wake pipe)."""
        self._close_wake_pipe()

    # -- control from other threads --------------------------------------

    def kill(self, status: str = "error", reason: str = "killed on request") -> None:
        """End the run's whole tree; the run is recorded with `status` and `reason`."""
        if self._kill_reason is None:
            self._kill_reason = (status, reason)
        with self._wake_lock:
            if self._wake_w < 0:
                return  # the run has ended
            try:
                os.write(self._wake_w, b"k")
            except OSError:
                pass

    def _close_wake_pipe(self) -> None:
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    # -- the run ---------------------------------------------------------

    def execute(self, on_start: Callable[["JobRun"], None] | None = None, on_settled: Callable[["JobRun"], None] | None = None) -> RunOutcome:
        """Run to the end. `on_start` is called just after the spawn (keep it light: the child is
        starting up beside it); `on_settled` once the run has gone SETTLE seconds, with
        `create_time` known, for the slower bookkeeping (not at all for a shorter run)."""
        start = dt.datetime.now().astimezone()
        t0 = time.monotonic()
        try:
            proc = self._spawn()
        except OSError as e:
            self._close_wake_pipe()
            self.started.set()
            if on_start:
                on_start(self)
            return self._outcome("error", None, self._spawn_error(e), "", start, t0)
        self.pid = proc.pid
        self.started.set()
        if on_start:
            on_start(self)
        try:
            status, error = self._pump(proc, t0, on_settled)
        finally:
            self._close_wake_pipe()
        stdout_tail = self._streams["stdout"].tail_text()
        if status == "success" and proc.returncode != 0:
            status, error = "error", self._exit_error(proc.returncode)
        return self._outcome(status, proc.returncode, error, stdout_tail, start, t0)

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self._cwd,
            env=self._env,
            start_new_session=True,
            bufsize=0,
        )

    def _spawn_error(self, e: OSError) -> str:
        if isinstance(e, FileNotFoundError) and self._cwd and e.filename == self._cwd:
            return f"working directory not found: {self._cwd}"
        program = self._argv[0] if self._argv else self.job.command
        if isinstance(e, FileNotFoundError):
            return f"command not found: {program}"
        if isinstance(e, PermissionError):
            return f"permission denied: {program}"
        return f"can't start {program}: {e.strerror or e}"

    def _exit_error(self, code: int) -> str:
        if code < 0:
            try:
                reason = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                reason = f"killed by signal {-code}"
        else:
            reason = f"exit status {code}"
        err = self._streams["stderr"].tail_text().strip()
        return f"{reason}: {err}" if err else reason

    def _settle(self, on_settled: Callable[["JobRun"], None]) -> None:
        self.create_time = proctree.process_identity(self.pid)
        try:
            on_settled(self)
        except Exception:
            log.exception("%s: bookkeeping of a run in progress failed", self.job.name)

    def _pump(self, proc: subprocess.Popen, t0: float, on_settled: Callable[["JobRun"], None] | None = None) -> tuple[str, str | None]:
        """Read both pipes until they close, enforcing the timeout; returns (status, error)."""
        self._streams = {"stdout": _Stream("stdout", self.tail_bytes), "stderr": _Stream("stderr", STDERR_TAIL)}
        out = self._open_output()
        for pipe in (proc.stdout, proc.stderr):
            _enlarge_pipe(pipe.fileno())
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        pidfd = _pidfd(proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        deadline = t0 + self.timeout if self.timeout else None
        settle_at = t0 + SETTLE if on_settled is not None else None
        open_pipes = 2
        exited_at: float | None = None
        killer: threading.Thread | None = None
        status, error = "success", None
        leftovers = False
        try:
            while True:  # until it has exited and its pipes are closed: a job that closed its output still runs, timeout and all
                now = time.monotonic()
                if self._kill_reason is None and deadline is not None and now >= deadline:
                    # decided only for a process that is really still running: after a stall of
                    # this thread (SIGSTOP, swap) the deadline can pass for a run that ended in time
                    if proc.poll() is None:
                        self._kill_reason = ("timeout", f"timed out after {format_seconds(self.timeout)}")
                    else:
                        deadline = None
                if self._kill_reason is not None and status == "success":
                    status, error = self._kill_reason
                    killer = threading.Thread(
                        target=proctree.end_run,
                        args=(self.run_id, proc.pid, self.kill_grace, self.create_time),
                        name=f"end-{self.job.name}",
                        daemon=True,
                    )
                    killer.start()
                    deadline = None
                    exited_at = None
                if settle_at is not None and now >= settle_at and exited_at is None:
                    settle_at = None
                    self._settle(on_settled)
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                    settle_at = None
                if exited_at is not None and not open_pipes:
                    break  # it has exited and all its output is read
                if exited_at is not None and now - exited_at > 2.0:
                    # the program has ended; something it left behind holds the pipes open
                    leftovers = True
                    break
                timeout = None
                if deadline is not None:
                    timeout = max(0.0, deadline - now)
                if exited_at is not None or pidfd is None:
                    poll = 0.25 if open_pipes else 0.05  # without a pidfd, an exit is noticed by polling
                    timeout = poll if timeout is None else min(timeout, poll)
                if settle_at is not None:
                    timeout = max(0.0, settle_at - now) if timeout is None else min(timeout, max(0.0, settle_at - now))
                if timeout is not None:
                    timeout = min(timeout, MAX_WAIT)  # a long timeout is waited for in pieces epoll takes
                busy = False
                for key, _ in sel.select(timeout):
                    if key.data == "wake":
                        os.read(self._wake_r, 64)
                    elif key.data == "exit":
                        sel.unregister(pidfd)
                        os.close(pidfd)
                        pidfd = None
                    else:
                        data = os.read(key.fd, READ_SIZE)
                        stream = self._streams[key.data]
                        if not data:
                            sel.unregister(key.fileobj)
                            open_pipes -= 1
                            self._deliver(stream, stream.feed(b"", final=True), out, final=True)
                        else:
                            self._deliver(stream, stream.feed(data), out)
                            busy = busy or len(data) < PIPE_SIZE // 2
                if busy and self._kill_reason is None:
                    # a chatty job: let its output gather in the (large) pipe for a moment instead of
                    # waking for every few hundred bytes; live output stays within 10 ms
                    time.sleep(BATCH_PAUSE)
            proc.wait()
            if leftovers and killer is None:
                self._end_leftovers()
            if killer is not None:
                # the run ends when every process of it is gone, not just the first one
                killer.join(self.kill_grace + 10)
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
            proc.stdout.close()
            proc.stderr.close()
            if out is not None:
                out.close()
        if status == "success" and self._kill_reason is not None:
            status, error = self._kill_reason
        return status, error

    def _end_leftovers(self) -> None:
        """End what the program left running holding its output after it exited: cut off from
        the pipes, unsupervised, it would otherwise run on beside the job's next runs."""
        found = proctree.run_processes(self.run_id)
        if not found:  # they dropped the run's marker from their environment: out of reach
            log.warning("%s: pipes still open 2 s after exit; not waiting for its leftovers", self.job.name)
            return
        log.warning("%s: the program exited but left %d process(es) holding its output; ending them", self.job.name, len(found))
        proctree.end_run(self.run_id, None, self.kill_grace)

    def _open_output(self) -> "_OutputFile | None":
        if self.output_file is None:
            return None
        return _OutputFile.open(self.output_file, self.output_cap, self.job.name)

    def _deliver(self, stream: _Stream, block: bytes, out, final: bool = False) -> None:
        if out is not None and block:
            out.write(block)
        if self.on_output is not None and (block or final):
            lines = stream.lines(block, final)
            if not lines:
                return
            try:
                self.on_output(stream.name, lines)
            except Exception:  # a listener must never break a run
                log.exception("output listener failed")

    def _outcome(self, status, exit_code, error, output, start, t0) -> RunOutcome:
        duration = time.monotonic() - t0
        return RunOutcome(
            status=status,
            exit_code=exit_code,
            error=error,
            output=output,
            start=start,
            end=start + dt.timedelta(seconds=duration),
            duration_s=round(duration, 3),
            pid=self.pid,
        )


class _OutputFile:
    """A run's output file: bounded in size, and quiet about a full disk (logged once per outage)."""

    outage = Outage()  # shared by all runs: an outage is logged when it starts and when it ends

    def __init__(self, fd: int, path: Path, cap: int | None, job_name: str) -> None:
        self.fd = fd
        self.path = path
        self.cap = cap
        self.job_name = job_name
        self.size = 0
        self.broken = False
        self.capped = False

    @classmethod
    def open(cls, path: Path, cap: int | None, job_name: str) -> "_OutputFile | None":
        try:
            ensure_private_dir(path.parent)
            fd = open_own(path, os.O_WRONLY | os.O_APPEND, "output file")  # a FIFO or symlink is set aside
        except OSError as e:
            cls._failed(job_name, path, e)
            return None
        return cls(fd, path, cap, job_name)

    @classmethod
    def _failed(cls, job_name: str, path: Path, e: OSError) -> None:
        if cls.outage.failed():
            log.error("%s: can't write run output to %s: %s (output is still streamed; logged once until writes work again)", job_name, path, e.strerror)

    def write(self, data: bytes) -> None:
        if self.broken or self.capped:
            return
        if self.cap is not None and self.size + len(data) > self.cap:
            data = data[: max(0, self.cap - self.size)]
            self.capped = True
            note = f"\n[insect-console: output cut at {self.cap // (1024 * 1024)} MB; the end of it is in the run's history record]\n"
            data += note.encode()
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                if written <= 0:
                    raise OSError(errno.ENOSPC, "no space left on device")
                view = view[written:]
                self.size += written
        except OSError as e:
            self.broken = True
            self._failed(self.job_name, self.path, e)
            return
        if self.outage.worked():
            log.warning("run output files can be written again")

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def format_seconds(seconds: float) -> str:
    return f"{int(seconds)} s" if float(seconds).is_integer() else f"{seconds:g} s"


def _enlarge_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):
        pass  # a smaller pipe only means more, smaller reads


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux ≥ 5.3), or None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None
