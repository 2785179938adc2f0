"""A CPU quota for the processes of one figure: a cgroup of the bench's own, made and removed here.

A Raspberry Pi's core is several times slower than this machine's; a CPU quota of 25 ms per
100 ms (a quarter of a core) gives the figures that depend on CPU speed (start-up, `list`) a
Pi-like budget. The cgroup is the only thing the benchmark changes outside its temp dir, so its
making and removing are kept in this one module: every cgroup made is listed, and
`remove_all()` (called at the end of the run, also on Ctrl-C) ends what is left in them, by
pid, and removes them.

Layout: `<cpu controller>/insect-bench-<tag>/<figure>`, the quota set on each figure's own
cgroup (so each one's throttling can be read), nothing set on the parent. cgroup v1
(`cpu.cfs_quota_us`, `cpu.cfs_period_us`) is used where the cpu controller is mounted there,
else cgroup v2 (`cpu.max`) where a cgroup2 mount offers the cpu controller. Needs root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Callable

from bench.procs import TAG

V1_ROOT = Path("/sys/fs/cgroup/cpu")
_made: list[Path] = []  # every cgroup made, parents first


def _v2_roots() -> list[Path]:
    roots = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                roots.append(Path(parts[1]))
    return roots


def find_controller() -> tuple[str | None, Path | None, str]:
    """("v1" or "v2", the controller's root, "") where a quota can be set, else (None, None, why)."""
    if os.geteuid() != 0:
        return None, None, "a CPU quota needs a cgroup, and making one needs root"
    if (V1_ROOT / "cpu.cfs_quota_us").exists() and os.access(V1_ROOT, os.W_OK):
        return "v1", V1_ROOT, ""
    for root in _v2_roots():
        with contextlib.suppress(OSError):
            if "cpu" in (root / "cgroup.controllers").read_text().split() and os.access(root, os.W_OK):
                return "v2", root, ""
    return None, None, ("no writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu and no cgroup2 mount offering the cpu "
                        "controller (cgroup.controllers)")


class CpuQuota:
    """A cgroup capped at `quota_us` of CPU time per `period_us`; `preexec()` puts a child in it."""

    def __init__(self, figure: str, quota_us: int = 25_000, period_us: int = 100_000) -> None:
        kind, root, why = find_controller()
        if kind is None or root is None:
            raise RuntimeError(why)
        self.kind = kind
        self.quota_us, self.period_us = quota_us, period_us
        parent = root / f"insect-bench-{TAG[:12]}"
        if not parent.exists():
            parent.mkdir()
            _made.append(parent)
            if kind == "v2":  # let the children have a cpu controller of their own
                for level in (root, parent):
                    with contextlib.suppress(OSError):
                        (level / "cgroup.subtree_control").write_text("+cpu")
        self.path = parent / figure
        self.path.mkdir()
        _made.append(self.path)
        if kind == "v1":
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (self.path / "cpu.max").write_text(f"{quota_us} {period_us}")
        self._procs_file = os.fsencode(str(self.path / "cgroup.procs"))

    def describe(self) -> str:
        setting = "cpu.cfs_quota_us / cpu.cfs_period_us" if self.kind == "v1" else "cpu.max"
        return f"{self.quota_us / 1000:g} ms per {self.period_us / 1000:g} ms (cgroup {self.kind} {setting})"

    def preexec(self) -> Callable[[], None]:
        """For Popen's preexec_fn: the child moves itself in before it execs (bare os calls only)."""
        path = self._procs_file

        def join() -> None:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)

        return join

    def throttled(self) -> tuple[int, float]:
        """(periods in which the cgroup was throttled, seconds it spent throttled) so far."""
        stat: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                stat[key] = int(value)
        if self.kind == "v1":
            return stat.get("nr_throttled", 0), stat.get("throttled_time", 0) / 1e9
        return stat.get("nr_throttled", 0), stat.get("throttled_usec", 0) / 1e6

    def remove(self) -> None:
        _remove(self.path)


def _pids(path: Path) -> list[int]:
    with contextlib.suppress(OSError, ValueError):
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    return []


def _remove(path: Path) -> None:
    """End what is left in the cgroup (its processes are the benchmark's own children), then remove it."""
    if not path.exists():
        if path in _made:
            _made.remove(path)
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids(path)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while _pids(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _pids(path):
            break
    for _ in range(50):  # a cgroup whose last process just ended can be busy for a moment
        try:
            path.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.05)
    if path in _made and not path.exists():
        _made.remove(path)


def remove_all() -> list[str]:
    """Remove every cgroup made (children first); returns those that could not be removed."""
    for path in sorted(_made, key=lambda p: len(p.parts), reverse=True):
        _remove(path)
    return [str(p) for p in _made]
