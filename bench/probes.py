"""Readings of a running process, and of the machine: CPU time, wakeups, memory, load.

These only look (at /proc and through psutil); they start nothing and change nothing, so any
figure can take them of any process, the benchmark's own children or not.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


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


def by_thread(delta: CpuDelta, most: int = 6) -> str:
    """The threads that woke up, most wakeups first: "name[tid] N, ..." (or "none")."""
    return ", ".join(f"{name} {w}" for name, _cpu, w in delta.per_thread[:most] if w) or "none"


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


def io_counters(pid: int) -> dict[str, int]:
    """/proc/PID/io of the whole process (all its threads): wchar and syscw count every write
    call (pipes and sockets too), write_bytes what went to the block layer (page-dirtying,
    so 4 KiB for a small file rewritten; 0 on tmpfs). Empty when it can't be read."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, value = line.split(":")
            out[key.strip()] = int(value)
    return out


def io_delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b[k] - a.get(k, 0) for k in b}
