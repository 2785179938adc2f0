"""What insect-console writes to the SD card: per run of a silent job, per idle hour, per `list`.

A Pi's SD card wears with writes and stalls on fsync, so every write, fsync and rename is
counted, by file, from `strace -f -y -ttt` (bench/trace.py) of the daemon and its threads,
with `/proc/PID/io` (wchar, syscw, write_bytes) of the daemon for the same windows.

- Per run: a daemon whose config has the spec's four default jobs plus `silent` (`true`,
  every 2 s); the window opens just after one run's record is written and closes just after
  the K-th next one's, so it holds exactly K runs (every write the daemon makes for them: the
  dispatch, the run's state entry, the record, the state after it). The same again with 1,000
  more jobs in the config (scale's mix), which makes the state file larger.
- Per idle hour: a daemon on the default config, nothing due, over a shorter window (the
  figure says which), scaled to an hour.
- `list`, against the idle daemon's config while it runs.

Files: state (the .state.json and its temp files, and the fsync of its directory after the
rename), history (batch_*.jsonl), output (the run's output file), runtime (.<stem>.run: locks),
log (the daemon's stderr, which under systemd goes to the journal), pipes and sockets (not the
SD card; listed apart), other.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.fixtures import DEFAULT_JOBS, Daemon, ic_command, write_config
from bench.probes import MachineLoad, io_counters, io_delta
from bench.procs import Procs, Workspace, run_timed, wait_until
from bench.report import Mode, Row, log, na_row
from bench.scale import scale_jobs
from bench.trace import RENAMES, SYNCS, WRITES, Call, read_trace, strace_argv, strace_missing

SILENT = {"name": "silent", "command": "true", "schedule_type": "interval", "schedule_time": "2", "enabled": True}
PERIOD = 2.0
SETTLE = 3.0
FIGURES = {
    "run": ("writes: per run of a silent job (`true`): fsyncs / bytes to files outside its output file", "≤ 3 fsyncs, ≤ 8 KiB"),
    "run-1000": ("writes: per run of a silent job, 1,000 other jobs in the config: fsyncs / bytes outside its output file", "≤ 3 fsyncs, ≤ 8 KiB"),
    "idle": ("writes: idle daemon, 4 default jobs, per hour: bytes to files / write calls / fsyncs", "0 bytes"),
    "list": ("writes: `insect-console list` (daemon running): bytes to files / fsyncs", "0 bytes"),
}
NOT_FILES = ("pipes, sockets", "stdout, stderr")


def kind_of(path: str, workdir: Path) -> str:
    name = path.rsplit("/", 1)[-1]
    if path.startswith(("pipe:", "socket:", "anon_inode:", "UNIX:")) or "socket:[" in path:
        return "pipes, sockets"
    if path in ("/dev/null",) or path.startswith("/dev/pts"):
        return "stdout, stderr"
    if ".state.json" in name or path == str(workdir / "config"):
        return "state"
    if "/output/" in path:
        return "output"
    if name.startswith("batch_") and ".jsonl" in name:
        return "history"
    if ".run/" in path:
        return "runtime"
    if name == "daemon.log":
        return "log"
    return "other"


class Tally:
    """Calls by kind of file: writes, bytes, fsyncs, renames."""

    def __init__(self, calls: list[Call], workdir: Path) -> None:
        self.by: dict[str, dict[str, int]] = defaultdict(lambda: {"writes": 0, "bytes": 0, "fsyncs": 0, "renames": 0})
        for c in calls:
            t = self.by[kind_of(c.path, workdir)]
            if c.name in WRITES:
                t["writes"] += 1
                t["bytes"] += max(0, c.result)
            elif c.name in SYNCS:
                t["fsyncs"] += 1
            elif c.name in RENAMES:
                t["renames"] += 1

    def total(self, key: str, skip: tuple[str, ...] = ()) -> int:
        return sum(v[key] for k, v in self.by.items() if k not in skip)

    def describe(self, per: float = 1.0) -> str:
        def one(k: str, v: dict[str, int]) -> str:
            parts = [f"{v['writes'] / per:.1f} writes, {v['bytes'] / per:,.0f} B"]
            if v["fsyncs"]:
                parts.append(f"{v['fsyncs'] / per:.1f} fsyncs")
            if v["renames"]:
                parts.append(f"{v['renames'] / per:.1f} renames")
            return f"{k} " + ", ".join(parts)
        return "; ".join(one(k, v) for k, v in sorted(self.by.items())) or "nothing"


def _records(log_dir: Path) -> int:
    return sum(len([x for x in f.read_bytes().splitlines() if x.strip()]) for f in log_dir.glob("batch_*.jsonl"))


class RunWindow:
    """A traced daemon running `silent` every 2 s; `measure()` counts exactly `runs` of its runs."""

    def __init__(self, ws: Workspace, procs: Procs, name: str, jobs: list[dict]) -> None:
        self.d = ws.dir(name)
        self.trace = self.d / "strace.txt"
        self.cfg = write_config(ws.dir(f"{name}/config") / "batch_config.toml", [SILENT, *jobs])
        self.log_dir = self.d / "logs" / "batch"
        self.daemon = Daemon(procs, self.d, self.cfg, wrapper=strace_argv(self.trace))

    def measure(self, runs: int) -> tuple[float, float, dict[str, int], int]:
        """(window start, end, /proc io delta, runs) once `runs` runs were recorded after the first."""
        self.daemon.wait_ready(120)
        if not wait_until(lambda: _records(self.log_dir) >= 1, timeout=30, interval=0.02):
            raise RuntimeError(f"the silent job did not run within 30 s: {self.daemon.log_tail()}")
        time.sleep(0.5)  # the first run's last state write is done; the next run is 1.5 s away
        n0, t0, io0 = _records(self.log_dir), time.time(), io_counters(self.daemon.pid)
        timeout = runs * PERIOD * 3 + 30
        if not wait_until(lambda: _records(self.log_dir) >= n0 + runs, timeout=timeout, interval=0.02):
            raise RuntimeError(f"{runs} runs were not recorded within {timeout:.0f} s")
        time.sleep(0.5)
        t1, io1 = time.time(), io_counters(self.daemon.pid)
        return t0, t1, io_delta(io0, io1), _records(self.log_dir) - n0

    def statuses(self) -> set[str]:
        out = set()
        for f in self.log_dir.glob("batch_*.jsonl"):
            out |= {json.loads(x).get("status") for x in f.read_bytes().splitlines() if x.strip()}
        return out


def writes_rows(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    why = strace_missing()
    if why:
        log(f"writes: skipped: {why}")
        return [na_row(label, target, f"writes: skipped: {why}") for label, target in FIGURES.values()]
    k = mode.writes_runs
    log(f"writes: traced daemons: {k} runs of a silent job (4 and 1,000 other jobs in the config), and one idle for {mode.writes_idle_s:.0f} s")
    load = MachineLoad()
    small = RunWindow(ws, procs, "writes-run", DEFAULT_JOBS)
    big = RunWindow(ws, procs, "writes-run-1000", scale_jobs(1000))
    idle_d = ws.dir("writes-idle")
    idle_trace = idle_d / "strace.txt"
    idle = Daemon(procs, idle_d, idle_d / "config" / "batch_config.toml", wrapper=strace_argv(idle_trace))
    results = {}
    try:
        idle.wait_ready(60)
        time.sleep(SETTLE)
        i0, io_i0 = time.time(), io_counters(idle.pid)
        errors: list[BaseException] = []

        def measure(key: str, window: RunWindow) -> None:
            try:
                results[key] = window.measure(k)
            except BaseException as e:  # noqa: BLE001 - raised below, on the main thread
                errors.append(e)

        threads = [threading.Thread(target=measure, args=kw, daemon=True) for kw in (("run", small), ("run-1000", big))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        left = mode.writes_idle_s - (time.time() - i0)
        if left > 0:
            time.sleep(left)
        i1, io_i = time.time(), io_delta(io_i0, io_counters(idle.pid))
        # `list` against the idle daemon's config while it runs
        list_trace = idle_d / "strace-list.txt"
        listed = run_timed([*strace_argv(list_trace), *ic_command(idle_d / "config" / "batch_config.toml", "list")], cwd=idle_d)
        statuses = {key: w.statuses() for key, w in (("run", small), ("run-1000", big))}
    finally:
        for d in (small.daemon, big.daemon, idle):
            d.stop()
    busy = load.done()
    rows = []
    for key, window in (("run", small), ("run-1000", big)):
        t0, t1, io, runs = results[key]
        calls = [c for c in read_trace(window.trace) if t0 <= c.when <= t1]
        tally = Tally(calls, window.d)
        skip = ("output", *NOT_FILES)
        fsyncs = tally.total("fsyncs", skip=NOT_FILES) / runs
        outside = tally.total("bytes", skip=skip) / runs
        label, target = FIGURES[key]
        log(f"writes: per run ({key}): {fsyncs:.1f} fsyncs, {outside:,.0f} B outside the output file")
        rows.append(Row(f"{label} (mean of {runs} runs)", f"{fsyncs:.1f} / {outside / 1024:.1f} KiB", target=target,
                        met=fsyncs <= 3 and outside <= 8 * 1024,
                        notes=[f"writes per run ({key}): {tally.describe(runs)}; /proc/PID/io per run: {io.get('syscw', 0) / runs:.1f} write calls, "
                               f"wchar {io.get('wchar', 0) / runs:,.0f} B, write_bytes {io.get('write_bytes', 0) / runs:,.0f} B "
                               f"(cancelled {io.get('cancelled_write_bytes', 0) / runs:,.0f} B); run statuses {sorted(statuses[key])}"
                               + (f"; {busy}" if key == "run" else "")],
                        raw={"by": dict(tally.by), "io": io, "runs": runs}))
    calls = [c for c in read_trace(idle_trace) if i0 <= c.when <= i1]
    tally = Tally(calls, idle_d)
    hours = (i1 - i0) / 3600
    files = tally.total("bytes", skip=NOT_FILES)
    label, target = FIGURES["idle"]
    rows.append(Row(f"{label} (counted over {i1 - i0:.0f} s, x {1 / hours:.0f})",
                    f"{files / hours:,.0f} B / {tally.total('writes', skip=NOT_FILES) / hours:,.0f} / {tally.total('fsyncs', skip=NOT_FILES) / hours:,.0f}",
                    target=target, met=files == 0,
                    notes=[f"writes, idle daemon over {i1 - i0:.0f} s: {tally.describe()}; /proc/PID/io: {io_i.get('syscw', 0)} write calls, "
                           f"wchar {io_i.get('wchar', 0)} B, write_bytes {io_i.get('write_bytes', 0)} B"],
                    raw={"by": dict(tally.by), "io": io_i, "seconds": i1 - i0}))
    tally = Tally(read_trace(list_trace), idle_d)
    files = tally.total("bytes", skip=NOT_FILES)
    label, target = FIGURES["list"]
    rows.append(Row(label, f"{files} B / {tally.total('fsyncs', skip=NOT_FILES)}", target=target,
                    met=files == 0 and tally.total("fsyncs", skip=NOT_FILES) == 0 and listed.rc == 0,
                    notes=[f"writes, list: {tally.describe()} (exit {listed.rc})"], raw={"by": dict(tally.by)}))
    return rows
