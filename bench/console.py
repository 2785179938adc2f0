"""The Textual console, run for real on a pseudo-terminal of 80x24 (`insect-console -c CFG`).

Measured only when `insect_console.app` imports. What is on the screen is read from the
terminal's output stream with the escape sequences stripped; a job table is "filled" when
every job's name has been drawn.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Callable

from bench.cli import NEWEST_JOB, History, write_producer
from bench.fixtures import DEFAULT_JOBS, hhmmss, ic_command, write_config
from bench.probes import CpuDelta, MachineLoad, PeakRss, by_thread, cpu_delta, cpu_sample, rss_of
from bench.procs import PY, Procs, Workspace, child_env, sleep_until, wait_until
from bench.pty_app import PtyApp
from bench.report import Mode, Row, log, mb, median, na_row, percentile, ratio
from bench.timing import FloorProbe, at_jobs, lateness_of, pct3

NAMES = [j["name"][:10] for j in DEFAULT_JOBS]
"""What shows that the job table is filled: every job's name (its first 10 letters: at 80
columns the console clips long names, "hourly_detect…")."""
SETTLE = 2.0

STREAMER = """\
import sys, time
end = time.monotonic() + float(sys.argv[1])
i = 0
while time.monotonic() < end:
    print(f"{i:07d} streaming a line of output from a chatty job ..........", flush=True)
    i += 1
    time.sleep(0.001)
"""

FIGURES = {
    "start": ("console: start to a filled job table, 80x24", "≤ 1.5 s"),
    "idle": ("console idle CPU, jobs table with countdowns", "≤ 2 % of a core"),
    "lateness": ("lateness, console open + a job streaming output: p50 / p99 / max ms", "p99 ≤ 10 ms"),
    "history": ("history in the console (h), newest page: time after the key / console RSS", "≤ 0.5 s, ≤ 100 MB"),
    "history-job": ("history in the console, one job's (l, h; all read): time after the key / console RSS", "≤ 3 s, ≤ 100 MB"),
    "output": ("console RSS while a job writes lots of output: before / peak", "bounded"),
}


def console_available() -> tuple[bool, str]:
    try:
        r = subprocess.run([PY, "-c", "import insect_console.app as a; a.run_console"], capture_output=True, text=True, timeout=120,
                           env=child_env())
    except subprocess.TimeoutExpired:
        return False, "importing insect_console.app took over 120 s"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"insect_console.app does not import yet ({last})"
    return True, ""


def console_rows(ws: Workspace, procs: Procs, mode: Mode, history: History | None) -> list[Row]:
    ok, why = console_available()
    if not ok:
        log(f"console: skipped: {why}")
        return [na_row(FIGURES[k][0], FIGURES[k][1], f"console: {why}") for k in FIGURES]
    rows: list[Row] = []
    for name, fn in (("start", lambda: start_and_idle(ws, procs, mode)),
                     ("lateness", lambda: [streaming_lateness(ws, procs, mode)]),
                     ("history", lambda: history_view(ws, procs, mode, history)),
                     ("output", lambda: [output_memory(ws, procs, mode)])):
        try:
            rows += fn()
        except Exception as e:  # one figure failing must not lose the others
            log(f"console {name}: failed: {e!r}")
            keys = {"start": ("start", "idle"), "history": ("history", "history-job")}.get(name, (name,))
            rows += [na_row(FIGURES[k][0], FIGURES[k][1], f"console {name}: failed: {e}") for k in keys]
    return rows


def _open(procs: Procs, d: Path, cfg: Path) -> PtyApp:
    return PtyApp(procs, ic_command(cfg), cwd=d)


def open_console(procs: Procs, d: Path, cfg: Path, needles: list[str] | None = None, timeout: float = 30,
                 preexec: Callable[[], None] | None = None) -> tuple[PtyApp, float]:
    """Start the console on `cfg`; returns it and the seconds until all `needles` (the job
    table's names) were drawn. Raises, the console ended, when they were not within `timeout`."""
    app = PtyApp(procs, ic_command(cfg), cwd=d, preexec=preexec)
    when = app.wait_for(needles or NAMES, timeout=timeout)
    if when is None:
        screen = app.text_since(0)[-300:]
        app.stop()
        raise RuntimeError(f"the job table was not drawn within {timeout:g} s; screen: {screen!r}")
    return app, when - app.spawned_at


def idle_reading(pid: int, window: float) -> tuple[CpuDelta, int]:
    """CPU time and wakeups of `pid` over `window` s after SETTLE s, and its RSS at the end."""
    time.sleep(SETTLE)
    a = cpu_sample(pid)
    time.sleep(window)
    return cpu_delta(a, cpu_sample(pid)), rss_of(pid)


def starts_and_idle(procs: Procs, place: Callable[[int], tuple[Path, Path]], starts: int, idle_s: float,
                    needles: list[str] | None = None, timeout: float = 30) -> tuple[list[float], CpuDelta, int]:
    """`starts` console starts, the k-th in `place(k)` (its dir and config); the first stays open
    for an idle reading of `idle_s` s. Returns the start times, the idle reading and the RSS."""
    times: list[float] = []
    idle, rss = None, 0
    for k in range(starts):
        d, cfg = place(k)
        app, took = open_console(procs, d, cfg, needles, timeout=timeout)
        try:
            times.append(took)
            if k == 0:
                idle, rss = idle_reading(app.pid, idle_s)
        finally:
            app.stop()
    return times, idle, rss


def start_and_idle(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    def place(k: int) -> tuple[Path, Path]:
        d = ws.dir(f"console-start{k}")
        return d, write_config(d / "batch_config.toml", DEFAULT_JOBS)

    times, idle, rss = starts_and_idle(procs, place, mode.console_starts, mode.console_idle_s)
    t = median(times)
    log(f"console: filled table after {t:.2f} s (median of {len(times)}); idle {idle.percent:.2f} % CPU" if idle else "console: no idle figure")
    rows = [Row(f"{FIGURES['start'][0]} (median of {len(times)})", f"{t:.2f} s", target=FIGURES["start"][1], met=t <= 1.5,
                notes=[f"console start: {', '.join(f'{x:.2f}' for x in times)} s"], raw={"times": times})]
    if idle is not None:
        rows.append(Row(f"{FIGURES['idle'][0]}, {mode.console_idle_s:.0f} s: % / wakeups", f"{idle.percent:.2f} % / {idle.wakeups}",
                        target=FIGURES["idle"][1], met=idle.percent <= 2.0,
                        notes=[f"console idle: RSS {mb(rss)}; wakeups by thread: {by_thread(idle)}"],
                        raw={"percent": idle.percent, "wakeups": idle.wakeups, "rss": rss}))
    return rows


def streaming_lateness(ws: Workspace, procs: Procs, mode: Mode) -> Row:
    n = mode.console_lateness_samples
    d = ws.dir("console-lateness")
    stamps = ws.dir("console-lateness/stamps")
    (d / "streamer.py").write_text(STREAMER)
    first = math.ceil(time.time() + 5)
    jobs = at_jobs(stamps, first, list(range(n))) + [
        {"name": "streamer", "command": f"{PY} streamer.py {n + 2.5}", "schedule_type": "daily", "schedule_time": hhmmss(first - 2), "enabled": True}]
    cfg = write_config(d / "batch_config.toml", jobs, max_parallel=4)
    log(f"console lateness: {n} at-time jobs from {hhmmss(first)}, a job streaming 1000 lines/s from {hhmmss(first - 2)}")
    app = _open(procs, d, cfg)
    socket = d / ".batch_config.run" / "control.sock"
    load = MachineLoad()
    floor = FloorProbe(ws.dir("console-lateness/floor"), first, n)
    try:
        if not wait_until(socket.exists, timeout=first - 2 - time.time(), interval=0.02):
            log("console lateness: warning: the console's scheduler was not up 2 s before the first due time")
        sleep_until(first + n + 1.5)
        streamed = app.bytes_read
        busy = load.done()
    finally:
        floor_late = floor.stop()
        app.stop()
    late, missing, doubled = lateness_of(stamps, first, n)
    p99 = percentile(late, 99) if late else math.inf
    return Row(f"{FIGURES['lateness'][0]} (n={n})", pct3(late), target=FIGURES["lateness"][1],
               met=p99 <= 0.010 and not missing and not doubled,
               notes=[f"console lateness: missing {missing}, doubled {doubled}; {streamed / 1e6:.1f} MB drawn to the terminal; "
                      f"floor (bare Popen, same moments): {pct3(floor_late)} ms; {busy}"],
               raw={"late": late, "floor": floor_late})


def history_view(ws: Workspace, procs: Procs, mode: Mode, history: History | None) -> list[Row]:
    """`h` on the job table: the newest page; then, on a fresh console, `l` then `h` on RARE_JOB
    (the first row, where the cursor starts): that job's history, which reads every file."""
    if history is None:
        why = "console history: no history was generated (the history group did not run)"
        return [na_row(FIGURES[k][0], FIGURES[k][1], why) for k in ("history", "history-job")]
    n = f"{history.records:,}"
    oldest_rare = min(history.rare_starts).strftime("%m-%d %H:%M:%S")
    rows = []
    for key, keys, needle, limit_s in (("history", [b"h"], NEWEST_JOB, 0.5), ("history-job", [b"l", b"h"], oldest_rare, 3.0)):
        app = _open(procs, history.config.parent, history.config)
        try:
            if app.wait_for(NAMES, timeout=30) is None:
                raise RuntimeError("the job table was not drawn within 30 s")
            time.sleep(1.0)
            for k in keys[:-1]:
                app.send(k)
                time.sleep(0.5)
            mark = app.offset
            t0 = time.perf_counter()
            app.send(keys[-1])
            when = app.wait_for([needle], timeout=60, since=mark)
            time.sleep(0.5)
            rss = rss_of(app.pid)
        finally:
            app.stop()
        label, target = FIGURES[key]
        if when is None:
            rows.append(na_row(label, target, f"console {key}: {needle!r} did not appear within 60 s"))
            continue
        took = when - t0
        log(f"console {key}: {took:.2f} s, RSS {rss / 1e6:.0f} MB")
        rows.append(Row(f"{label}, {n} records", f"{took:.2f} s / {mb(rss)}", target=target, met=took <= limit_s and rss <= 100e6,
                        raw={"took": took, "rss": rss}))
    return rows


def output_memory(ws: Workspace, procs: Procs, mode: Mode) -> Row:
    d = ws.dir("console-output")
    producer = write_producer(d)
    size = mode.output_mb
    due = math.ceil(time.time() + 4)
    cfg = write_config(d / "batch_config.toml", [
        {"name": "big", "command": f"{PY} {producer} {size}", "schedule_type": "daily", "schedule_time": hhmmss(due), "enabled": True}])
    history = d / "logs" / "batch"
    log(f"console output: a job writing {size} MB at {hhmmss(due)} with the console open")
    app = _open(procs, d, cfg)
    try:
        app.wait_for(["big"], timeout=30)
        sleep_until(due - 0.5)
        before = rss_of(app.pid)
        peak = PeakRss(app.pid)

        def finished() -> bool:
            return any('"job_name": "big"' in f.read_text() for f in history.glob("batch_*.jsonl"))

        done = wait_until(finished, timeout=300, interval=0.2)
        top = peak.stop()
    finally:
        app.stop()
    grew = top - before
    limit = max(10e6, size * 1e6 * 0.1)
    return Row(f"{FIGURES['output'][0]} ({size} MB)", f"{mb(before)} / {mb(top)}", ratio=ratio(top, before), target=f"grows < {limit / 1e6:.0f} MB",
               met=done and grew < limit, notes=[f"console output: the run {'finished' if done else 'did NOT finish within 300 s'}"],
               raw={"before": before, "peak": top})
