"""What every figure needs: the mode, temp dirs, processes that are always ended, configs,
CPU / wakeup / memory readings, timed child runs, and a pseudo-terminal for the console."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import psutil
import tomli_w

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
TAG_ENV = "INSECT_BENCH_TAG"
TAG = uuid.uuid4().hex
_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- mode ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    name: str
    lateness_samples: int  # at-time jobs, one per second
    drift_runs: int  # runs of the 1 s interval job
    idle_s: float  # idle window of the daemon and of the spec's loop
    cli_runs: int  # runs of `list` (and of its baseline) for a median
    history_records: int
    history_runs: int
    output_mb: int
    burst_jobs: int
    console_starts: int
    console_idle_s: float
    console_lateness_samples: int
    baseline_loops: int = 4  # spec loops at stratified phases for the lateness baseline
    output_pairs: int = 3  # alternating runs of the output job alone and through insect-console
    side_by_side: bool = False  # run the spec's loops at the same time as insect-console (saves time)


QUICK = Mode("quick", lateness_samples=16, drift_runs=16, idle_s=15, cli_runs=5, history_records=100_000, history_runs=3,
             output_mb=20, burst_jobs=200, console_starts=1, console_idle_s=6, console_lateness_samples=8, side_by_side=True)
FULL = Mode("full", lateness_samples=120, drift_runs=50, idle_s=60, cli_runs=15, history_records=1_000_000, history_runs=5,
            output_mb=200, burst_jobs=200, console_starts=5, console_idle_s=30, console_lateness_samples=60, baseline_loops=8, output_pairs=5)


# -- results --------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table. `met` is True/False, or None when there is no verdict (n/a)."""

    figure: str
    value: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def na_row(figure: str, target: str, why: str) -> Row:
    return Row(figure, "n/a", target=target, met=None, notes=[why])


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    if b <= 0:
        return "∞" if a > 0 else "—"
    return f"{a / b:.2f}x"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


# -- temp dirs ------------------------------------------------------------------


class Workspace:
    """One temp dir for the whole run; removed at the end unless `keep`."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="insect-bench-"))
        self.keep = keep

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def cleanup(self) -> None:
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# -- processes -------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env[TAG_ENV] = TAG
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if extra:
        env.update(extra)
    return env


class Procs:
    """Every process the benchmark starts, so each one is ended, also on Ctrl-C or an error.

    Each child runs in its own session. Ending one takes a snapshot of its descendants (the
    jobs a daemon started run in sessions of their own), asks it to stop, and ends whatever of
    the snapshot is still alive, by pid. Every child also carries `INSECT_BENCH_TAG` in its
    environment, and `sweep()` ends any tagged process that is left (a job started after the
    snapshot, say).
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def spawn(self, argv: Sequence[str], *, cwd: Path | str, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
              env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
        p = subprocess.Popen(list(argv), cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, env=env or child_env(), start_new_session=True,
                             preexec_fn=preexec_fn)
        with self._lock:
            self._procs.append(p)
        return p

    def end(self, p: subprocess.Popen, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Stop `p` (signal, wait `grace`, SIGKILL) and whatever it started."""
        try:
            family = psutil.Process(p.pid).children(recursive=True)
        except psutil.Error:
            family = []
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        _kill_all(family)
        with self._lock:
            if p in self._procs:
                self._procs.remove(p)
        return p.returncode

    def end_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            self.end(p, grace=5.0)
        self.sweep()

    def sweep(self) -> None:
        me = os.getpid()
        tagged = []
        for proc in psutil.process_iter():
            try:
                if proc.pid != me and proc.environ().get(TAG_ENV) == TAG:
                    tagged.append(proc)
            except psutil.Error:
                continue
        if tagged:
            log(f"ending {len(tagged)} leftover process(es): {[p.pid for p in tagged]}")
        _kill_all(tagged)


def _kill_all(procs: Iterable[psutil.Process]) -> None:
    alive = []
    for proc in procs:
        try:
            if proc.is_running():
                proc.terminate()
                alive.append(proc)
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(alive, timeout=3)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=3)


@dataclass
class Timed:
    """A finished child: wall time, peak RSS, exit status."""

    wall: float
    hwm: int  # VmHWM last read from /proc while it ran (0 if it ended before the first read)
    maxrss: int  # ru_maxrss from wait4: exact, but never below the benchmark's own RSS at fork
    rc: int
    cpu: float = 0.0  # user + system CPU seconds of the child and the descendants it waited for

    @property
    def peak_rss(self) -> int:
        """The child's peak RSS. wait4's ru_maxrss also counts the pages it shared with the
        benchmark between fork and exec, so the /proc reading is preferred when there is one."""
        return self.hwm or self.maxrss


_SELF_CMDLINE = Path("/proc/self/cmdline").read_bytes() if Path("/proc/self/cmdline").exists() else b""


def _vm_hwm(pid: int) -> int:
    """The child's VmHWM, or 0 while it has not exec'd yet (it still shows our own memory then)."""
    try:
        if Path(f"/proc/{pid}/cmdline").read_bytes() == _SELF_CMDLINE:
            return 0
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_timed(argv: Sequence[str], *, cwd: Path | str, stdout=subprocess.DEVNULL, env: dict[str, str] | None = None,
              timeout: float = 600) -> Timed:
    """Run a child to its end, reading its peak RSS (VmHWM) every 2 ms while it runs."""
    t0 = time.perf_counter()
    p = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, env=env or child_env(),
                         start_new_session=True)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)  # a chatty stderr can't block it
    reader.start()
    deadline = time.monotonic() + timeout
    hwm = 0
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            break
        hwm = max(hwm, _vm_hwm(p.pid))
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    if p.returncode != 0:
        log(f"{' '.join(map(str, argv[:6]))}...: exit {p.returncode}: {b''.join(err).decode(errors='replace')[-300:]}")
    return Timed(wall, hwm, usage.ru_maxrss * 1024, p.returncode, usage.ru_utime + usage.ru_stime)


# -- configs ------------------------------------------------------------------------


def ic_argv(config: Path | str, *args: str) -> list[str]:
    return [PY, "-m", "insect_console", "-c", str(config), *args]


def write_config(path: Path, jobs: list[dict[str, Any]], **settings: Any) -> Path:
    doc: dict[str, Any] = {"jobs": jobs}
    if settings:
        doc = {"settings": settings, "jobs": jobs}
    path.write_text(tomli_w.dumps(doc))
    os.chmod(path, 0o600)
    return path


def write_spec_config(path: Path, jobs: list[dict[str, Any]]) -> Path:
    full = [{"enabled": True, "last_run": None, "last_status": None, "error_count": 0, **job} for job in jobs]
    path.write_text(json.dumps({"jobs": full}, indent=2))
    return path


DEFAULT_JOBS = [
    {"name": "hourly_detection", "command": "python main.py --mode single", "schedule_type": "interval", "schedule_time": "3600", "enabled": True},
    {"name": "daily_analysis", "command": "python main.py --mode analysis", "schedule_type": "daily", "schedule_time": "02:00", "enabled": True},
    {"name": "weekly_cleanup", "command": "python main.py --mode cleanup", "schedule_type": "weekly", "schedule_time": "sunday", "enabled": True},
    {"name": "daily_backup", "command": "python main.py --mode backup", "schedule_type": "daily", "schedule_time": "03:00", "enabled": False},
]
"""The spec's four default jobs (what both insect-console and the spec create on first start)."""


def stamp_command(path: Path) -> str:
    """A job command that records its own start: `date +%s.%N` appended to `path`."""
    return f"date +%s.%N >> {path}"


def read_stamps(path: Path) -> list[float]:
    try:
        return [float(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def hhmmss(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


# -- daemons ----------------------------------------------------------------------------


class Daemon:
    """`insect-console -c CFG scheduler --no-ui`, in its own dir, logging to a file."""

    def __init__(self, procs: Procs, workdir: Path, config: Path, extra_args: Sequence[str] = ("scheduler", "--no-ui")) -> None:
        self.procs = procs
        self.workdir = workdir
        self.config = config
        self.log_path = workdir / "daemon.log"
        self._log = open(self.log_path, "ab")
        self.started_at = time.time()
        self.proc = procs.spawn(ic_argv(config, *extra_args), cwd=workdir, stderr=self._log, stdout=self._log)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Wait for the scheduler to be up (its log says so); returns the wall time it was seen."""
        socket = self.config.with_name(f".{self.config.stem}.run") / "control.sock"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log_tail()}")
            if socket.exists() or b"scheduler started" in self.log_path.read_bytes():
                return time.time()
            time.sleep(0.01)
        raise RuntimeError(f"daemon not ready after {timeout} s: {self.log_tail()}")

    def log_tail(self, n: int = 600) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        return ""

    def stop(self) -> int | None:
        rc = self.procs.end(self.proc, sig=signal.SIGTERM, grace=40)
        self._log.close()
        return rc


class SpecLoop:
    """The baseline loop (`bench/spec_loop.py`) on a JSON config, optionally at a loop phase."""

    def __init__(self, procs: Procs, workdir: Path, config: Path, phase: float | None = None) -> None:
        self.procs = procs
        self.log_path = workdir / f"spec_loop-{config.stem}.log"
        self._log = open(self.log_path, "ab")
        argv = [PY, str(Path(__file__).with_name("spec_loop.py")), str(config)]
        if phase is not None:
            argv += ["--phase", f"{phase:.4f}"]
        self.proc = procs.spawn(argv, cwd=workdir, stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spec loop exited {self.proc.returncode}: {self.log_path.read_text()[-600:]}")
            if b"ready" in self.log_path.read_bytes():
                return time.time()
            time.sleep(0.01)
        raise RuntimeError("spec loop not ready")

    def stop(self) -> int | None:
        rc = self.procs.end(self.proc, sig=signal.SIGTERM, grace=5)
        self._log.close()
        return rc


# -- CPU, wakeups, memory ---------------------------------------------------------------


@dataclass
class CpuSample:
    """CPU time (ns) and voluntary context switches (≈ wakeups), per thread and in total."""

    when: float
    cpu_ns: int
    wakeups: int
    involuntary: int
    psutil_cpu_s: float
    threads: dict[int, tuple[str, int, int]]  # tid -> (name, cpu_ns, voluntary switches)


def cpu_sample(pid: int) -> CpuSample:
    """Precise per-thread CPU time from /proc/PID/task/*/schedstat (ns); psutil's cpu_times too.

    psutil's figure has clock-tick resolution (10 ms), too coarse for an idle process; the
    schedstat figure is exact. Voluntary context switches are summed over all threads (psutil's
    `num_ctx_switches` reads only the main thread's on Linux).
    """
    threads: dict[int, tuple[str, int, int]] = {}
    cpu_total = vol_total = invol_total = 0
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = [int(t) for t in os.listdir(task_dir)]
    except OSError:
        tids = []
    for tid in tids:
        try:
            cpu = int((task_dir / str(tid) / "schedstat").read_text().split()[0])
            status = (task_dir / str(tid) / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        name = re.search(r"^Name:\s*(.*)$", status, re.M)
        vol = re.search(r"^voluntary_ctxt_switches:\s*(\d+)", status, re.M)
        invol = re.search(r"^nonvoluntary_ctxt_switches:\s*(\d+)", status, re.M)
        v = int(vol[1]) if vol else 0
        threads[tid] = (name[1] if name else "?", cpu, v)
        cpu_total += cpu
        vol_total += v
        invol_total += int(invol[1]) if invol else 0
    try:
        t = psutil.Process(pid).cpu_times()
        ps_cpu = t.user + t.system
    except psutil.Error:
        ps_cpu = math.nan
    if not tids:  # no /proc task details: psutil only
        cpu_total = int(ps_cpu * 1e9)
        with contextlib.suppress(psutil.Error):
            vol_total = psutil.Process(pid).num_ctx_switches().voluntary
    return CpuSample(time.monotonic(), cpu_total, vol_total, invol_total, ps_cpu, threads)


@dataclass
class CpuDelta:
    seconds: float
    cpu_s: float
    wakeups: int
    psutil_cpu_s: float
    per_thread: list[tuple[str, float, int]]  # (name, cpu s, wakeups), busiest first

    @property
    def percent(self) -> float:
        return 100.0 * self.cpu_s / self.seconds if self.seconds else math.nan

    def describe(self) -> str:
        return f"{self.cpu_s * 1000:.1f} ms CPU, {self.wakeups} wakeups in {self.seconds:.0f} s"


def cpu_delta(a: CpuSample, b: CpuSample) -> CpuDelta:
    per = []
    for tid, (name, cpu, vol) in b.threads.items():
        _n, cpu0, vol0 = a.threads.get(tid, (name, 0, 0))
        per.append((f"{name}[{tid}]", (cpu - cpu0) / 1e9, vol - vol0))
    per.sort(key=lambda x: (-x[2], -x[1]))
    return CpuDelta(b.when - a.when, (b.cpu_ns - a.cpu_ns) / 1e9, b.wakeups - a.wakeups, b.psutil_cpu_s - a.psutil_cpu_s, per)


def rss_of(pid: int, with_children: bool = False) -> int:
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        if with_children:
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        return total
    except psutil.Error:
        return 0


class PeakRss:
    """Samples a process's RSS every `interval` seconds on a thread; `.peak` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        return self.peak


class MachineLoad:
    """How busy the whole machine was between `__init__` and `done()` (from /proc/stat).

    Other work on the machine (other users, other builds) shows up in lateness and wall times;
    the table's notes give this figure for each timing phase so a run can be judged.
    """

    def __init__(self) -> None:
        self._a = self._read()

    @staticmethod
    def _read() -> list[int]:
        try:
            with open("/proc/stat") as f:
                return [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return []

    def done(self) -> str:
        b = self._read()
        if not self._a or not b:
            return "machine load unknown"
        d = [y - x for x, y in zip(self._a, b)]
        total = sum(d[:8]) or 1
        idle = d[3] + (d[4] if len(d) > 4 else 0)
        steal = d[7] if len(d) > 7 else 0
        busy = 100.0 * (total - idle) / total
        return f"machine {busy:.0f}% busy" + (f", {100.0 * steal / total:.0f}% stolen" if steal else "")


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def sleep_until(epoch: float) -> None:
    while True:
        left = epoch - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


# -- a pseudo-terminal for the console --------------------------------------------------

_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[^\x1b]*\x1b\\|\x1b[@-Z\\-_]|\x1b[()][0-9A-Za-z]|[\x00-\x08\x0e-\x1f]")


class PtyApp:
    """A program on a pseudo-terminal of `cols` x `rows`, its output drained on a thread.

    Output is kept as text with the escape sequences stripped (enough to see what was drawn:
    Textual writes a cell's text in one piece), with the time each chunk arrived, so
    `wait_for` can say when some text first appeared. At most `keep` bytes are kept.
    """

    def __init__(self, procs: Procs, argv: Sequence[str], cwd: Path, cols: int = 80, rows: int = 24, keep: int = 4_000_000) -> None:
        self.procs = procs
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = child_env({"TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows), "COLORTERM": "truecolor"})
        env.pop("TEXTUAL", None)

        def make_controlling_tty() -> None:  # runs in the child, after setsid
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.spawned_at = time.perf_counter()
        self.proc = procs.spawn(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=make_controlling_tty)
        os.close(slave)
        self.pid = self.proc.pid
        self._keep = keep
        self._chunks: list[tuple[float, int, str]] = []  # (perf_counter, offset, text)
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
