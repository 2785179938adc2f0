"""When jobs start: lateness of at-time jobs, drift of an interval job, a 200-job burst.

Every job's command is `date +%s.%N >> FILE` (through /bin/sh, for insect-console and the
baseline alike), so a start is recorded by the job itself, not by the scheduler's log.
Lateness = that stamp minus the scheduled HH:MM:SS.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import threading
import time
from pathlib import Path

from bench.fixtures import Daemon, SpecLoop, hhmmss, read_stamps, stamp_command, write_config, write_spec_config
from bench.probes import MachineLoad
from bench.procs import Procs, Workspace, child_env, sleep_until, wait_until
from bench.report import Mode, Row, log, ms, percentile, ratio

LEAD = 4.0
"""Seconds between writing the configs and the first due time (the daemon starts in < 1 s)."""


def at_jobs(stamps: Path, first: float, indexes: list[int], prefix: str = "at") -> list[dict]:
    return [
        {"name": f"{prefix}{i:03d}", "command": stamp_command(stamps / f"{prefix}{i:03d}"), "shell": True,
         "schedule_type": "daily", "schedule_time": hhmmss(first + i), "enabled": True}
        for i in indexes
    ]


def lateness_of(stamps: Path, first: float, n: int, prefix: str = "at") -> tuple[list[float], int, int]:
    """(lateness in s of each run, runs missing, runs doubled)."""
    late, missing, doubled = [], 0, 0
    for i in range(n):
        runs = read_stamps(stamps / f"{prefix}{i:03d}")
        if not runs:
            missing += 1
            continue
        doubled += len(runs) - 1
        late.append(runs[0] - (first + i))
    return late, missing, doubled


def pct3(values: list[float]) -> str:
    if not values:
        return "none ran"
    return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))} / {ms(max(values))}"


def drift_of(stamps: list[float], period: float = 1.0) -> tuple[float, float, int]:
    """(total drift = last offset - first offset, max |offset|, periods skipped) against start + k*period."""
    if len(stamps) < 2:
        return math.nan, math.nan, 0
    t0 = stamps[0]
    offsets, skipped, last_k = [], 0, 0
    for t in stamps:
        k = round((t - t0) / period)
        skipped += max(0, k - last_k - 1)
        last_k = k
        offsets.append(t - (t0 + k * period))
    return offsets[-1] - offsets[0], max(abs(o) for o in offsets), skipped


def envelope_k(n: int) -> int:
    return max(1, min(10, n // 2))


def envelope_drift(stamps: list[float], period: float = 1.0) -> float:
    """Earliest offset among the last k runs minus the earliest among the first k (k ≤ 10).

    A start can be late by any amount (the machine was busy) but never early, so the earliest
    starts trace where the grid is; their change is the drift with the jitter left out.
    """
    k = envelope_k(len(stamps))
    t0 = stamps[0]
    offs = [t - (t0 + round((t - t0) / period) * period) for t in stamps]
    return min(offs[-k:]) - min(offs[:k])


class FloorProbe:
    """The floor of the lateness measurement: the same `sh -c 'date +%s.%N >> F'` started by a
    bare `subprocess.Popen` at a known instant (.85 s past the jobs' seconds). No
    scheduler can start a job sooner than this on this machine at this moment."""

    def __init__(self, d: Path, first: float, n: int) -> None:
        self.d, self.first, self.n = d, first, n
        self.late: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _run(self) -> None:
        for i in range(self.n):
            if self._stop.is_set():
                return
            stamp = self.d / f"floor{i:03d}"
            at = self.first + i + 0.85
            while time.time() < at and not self._stop.is_set():
                time.sleep(min(0.2, max(0.0, at - time.time())))
            t = time.time()
            subprocess.run(["/bin/sh", "-c", stamp_command(stamp)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True, env=child_env())
            got = read_stamps(stamp)
            if got:
                self.late.append(got[0] - t)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(5)
        return self.late


def _stamp_job(stamps: Path, name: str, due: float) -> dict:
    return {"name": name, "command": stamp_command(stamps / name), "shell": True, "schedule_type": "daily",
            "schedule_time": hhmmss(due), "enabled": True}


def _late(stamps: Path, dues: dict[str, float]) -> tuple[list[float], int, int]:
    late, missing, doubled = [], 0, 0
    for name, due in dues.items():
        runs = read_stamps(stamps / name)
        if not runs:
            missing += 1
            continue
        doubled += len(runs) - 1
        late.append(runs[0] - due)
    return late, missing, doubled


def _tick_job(stamps: Path) -> dict:
    return {"name": "tick", "command": stamp_command(stamps), "shell": True, "schedule_type": "interval", "schedule_time": "1", "enabled": True}


def scheduling_phase(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    """Lateness of at-time jobs and drift of a 1 s interval job, for insect-console and the spec's loop.

    Full mode runs insect-console (lateness daemon, drift daemon, the floor probe) first, then
    the spec's loops; `--quick` runs all of them side by side to save time (they are mostly
    asleep, but forks in the same instant cost insect-console ~0.5-1 ms at p50 on 2 cores).
    Phases within the second keep the contenders apart: at-time jobs are due at .000, the floor
    probe runs at .85, the drift daemon's grid starts where its scheduler comes up (it is
    started at .15, up 0.3-0.5 s later), the drift baseline's loop enters at .25-.35. The spec's
    lateness loops are entered at stratified phases over the whole second (one loop's lateness
    is fixed by the phase it happened to start at), each with one at-time job a second.
    """
    n, loops = mode.lateness_samples, mode.baseline_loops
    rng = random.Random()
    ic_dir, ic_stamps = ws.dir("lateness-ic"), ws.dir("lateness-ic/stamps")
    base_dir, base_stamps = ws.dir("lateness-spec"), ws.dir("lateness-spec/stamps")
    drift_ic_dir, drift_base_dir = ws.dir("drift-ic"), ws.dir("drift-spec")
    drift_ic_stamps, drift_base_stamps = drift_ic_dir / "stamps", drift_base_dir / "stamps"

    def start_ic(first: float) -> tuple[list, dict[str, float], FloorProbe]:
        dues = {f"at{i:03d}": first + i for i in range(n)}
        cfg = write_config(ic_dir / "lateness.toml", [_stamp_job(ic_stamps, k, v) for k, v in dues.items()], max_parallel=4)
        ic = Daemon(procs, ic_dir, cfg)
        sleep_until(math.floor(time.time()) + 1.15)
        drift = Daemon(procs, drift_ic_dir, write_config(drift_ic_dir / "drift.toml", [_tick_job(drift_ic_stamps)]))
        return [ic, drift], dues, FloorProbe(ws.dir("lateness-floor"), first, n)

    def start_spec(first: float, side_by_side: bool) -> tuple[list, dict[str, float]]:
        dues: dict[str, float] = {}
        procs_ = []
        for p in range(loops):
            if side_by_side:  # the same seconds as insect-console's jobs, dealt out to the loops
                mine = {f"at{i:03d}": first + i for i in range(p, n, loops)}
            else:  # every loop one job a second: n samples in n / loops seconds
                per = math.ceil(n / loops)
                mine = {f"at{i:03d}": first + (i - p * per) for i in range(p * per, min(n, (p + 1) * per))}
            dues.update(mine)
            cfg = write_spec_config(base_dir / f"spec{p}.json", [_stamp_job(base_stamps, k, v) for k, v in mine.items()])
            procs_.append(SpecLoop(procs, base_dir, cfg, phase=(p + rng.random()) / loops))
        drift_cfg = write_spec_config(drift_base_dir / "drift.json", [_tick_job(drift_base_stamps)])
        procs_.append(SpecLoop(procs, drift_base_dir, drift_cfg, phase=0.25 + 0.1 * rng.random()))
        return procs_, dues

    def run_until(running: list, first: float, last_due: float, stamp_files: list[Path]) -> str:
        load = MachineLoad()
        try:
            for proc in running:
                if proc.wait_ready() >= first:
                    log(f"warning: pid {proc.pid} was ready only after the first due time {hhmmss(first)}")
            sleep_until(last_due + 1.5)
            wait_until(lambda: all(len(read_stamps(f)) >= mode.drift_runs for f in stamp_files),
                       timeout=mode.drift_runs * 1.2 + 10, interval=0.2)
            return load.done()
        finally:
            for proc in running:
                proc.stop()

    if mode.side_by_side:
        first = math.ceil(time.time() + LEAD)
        log(f"scheduling: {n} at-time jobs from {hhmmss(first)}, insect-console and {loops} spec loops side by side; "
            f"a 1 s interval job for {mode.drift_runs} runs (both)")
        spec_procs, base_dues = start_spec(first, side_by_side=True)
        ic_procs, ic_dues, floor = start_ic(first)
        try:
            busy = run_until(ic_procs + spec_procs, first, first + n - 1, [drift_ic_stamps, drift_base_stamps])
        finally:
            floor_late = floor.stop()
        base_busy = busy
    else:
        first = math.ceil(time.time() + LEAD)
        log(f"scheduling: insect-console: {n} at-time jobs from {hhmmss(first)}, a 1 s interval job for {mode.drift_runs} runs")
        ic_procs, ic_dues, floor = start_ic(first)
        try:
            busy = run_until(ic_procs, first, first + n - 1, [drift_ic_stamps])
        finally:
            floor_late = floor.stop()
        first_b = math.ceil(time.time() + LEAD)
        log(f"scheduling: the spec's loop: {n} at-time jobs over {loops} loops from {hhmmss(first_b)}, the interval job")
        spec_procs, base_dues = start_spec(first_b, side_by_side=False)
        base_busy = run_until(spec_procs, first_b, max(base_dues.values()), [drift_base_stamps])

    ic_late, ic_missing, ic_doubled = _late(ic_stamps, ic_dues)
    base_late, _bm, _bd = _late(base_stamps, base_dues)
    rows = []
    p99 = percentile(ic_late, 99) if ic_late else math.inf
    how = "side by side with insect-console" if mode.side_by_side else "after insect-console"
    notes = [f"lateness: insect-console n={len(ic_late)} (missing {ic_missing}, doubled {ic_doubled}), {busy}; "
             f"floor (the same command from a bare Popen, same moments): {pct3(floor_late)} ms; "
             f"spec loop n={len(base_late)} over {loops} loops at stratified phases of the second, {how}, {base_busy}"]
    rows.append(Row(
        f"lateness of at-time jobs, headless: p50 / p99 / max ms (n={n})",
        pct3(ic_late), pct3(base_late), ratio(p99, percentile(base_late, 99) if base_late else None),
        "p99 ≤ 5 ms", p99 <= 0.005 and ic_missing == 0 and ic_doubled == 0, notes,
        raw={"ic": ic_late, "baseline": base_late, "floor": floor_late, "missing": ic_missing, "doubled": ic_doubled}))

    ic_runs = read_stamps(drift_ic_stamps)[: mode.drift_runs]
    base_runs = read_stamps(drift_base_stamps)[: mode.drift_runs]
    ic_total, ic_max, ic_skip = drift_of(ic_runs)
    b_total, b_max, b_skip = drift_of(base_runs)
    rows.append(Row(
        f"interval drift, {len(ic_runs)} runs of a 1 s job: total / largest offset ms",
        f"{ms(ic_total)} / {ms(ic_max)}" + (f" ({ic_skip} skipped)" if ic_skip else ""),
        f"{ms(b_total)} / {ms(b_max)}" + (f" ({b_skip} skipped)" if b_skip else ""),
        ratio(abs(ic_total), abs(b_total)), "total ≤ 1 ms",
        len(ic_runs) >= mode.drift_runs and abs(ic_total) <= 0.001 and ic_skip == 0,
        [f"drift: offsets against first start + k x 1 s; the grid itself, with each start's jitter left out "
         f"(earliest of the last {envelope_k(len(ic_runs))} offsets - earliest of the first {envelope_k(len(ic_runs))}): "
         f"insect-console {ms(envelope_drift(ic_runs))} ms, spec loop {ms(envelope_drift(base_runs))} ms"],
        raw={"ic": ic_runs, "baseline": base_runs}))
    rows += cron_window_phase(ws, procs, mode)  # the schedule types beyond the spec's, on their own daemon
    return rows


def cron_window_phase(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    """Lateness of the schedule types beyond the spec's: a cron job due every minute ("* * * * *")
    and interval jobs whose windows open at one second each ("HH:MM:SS..", one run each at its
    opening), in one headless daemon; the span of openings holds a minute boundary, so the cron
    job is due in it. Same target as the at-time jobs."""
    n = mode.lateness_samples
    d, stamps = ws.dir("lateness-cron"), ws.dir("lateness-cron/stamps")
    earliest = math.ceil(time.time() + LEAD)
    minute = math.ceil(earliest / 60) * 60
    first = max(earliest, minute - n // 2)
    opens = {f"win{i:03d}": first + i for i in range(n)}
    jobs = [{"name": name, "command": stamp_command(stamps / name), "shell": True, "schedule_type": "interval",
             "schedule_time": "1h", "window": f"{hhmmss(at)}..{hhmmss(at + 1800)}", "enabled": True} for name, at in opens.items()]
    jobs.append({"name": "cron", "command": stamp_command(stamps / "cron"), "shell": True, "schedule_type": "cron",
                 "schedule_time": "* * * * *", "enabled": True})
    cfg = write_config(d / "cron.toml", jobs, max_parallel=4)
    last = max(first + n - 1, minute)
    log(f"scheduling: {n} window openings from {hhmmss(first)} and a cron job every minute (due {hhmmss(minute)}), headless")
    daemon = Daemon(procs, d, cfg)
    load = MachineLoad()
    try:
        if daemon.wait_ready() >= min(first, minute):
            log(f"warning: insect-console was ready only after the first due time {hhmmss(min(first, minute))}")
        sleep_until(last + 1.5)
        busy = load.done()
    finally:
        daemon.stop()
    late, missing, doubled = _late(stamps, opens)
    cron_runs = [t for t in read_stamps(stamps / "cron") if t < last + 1]
    cron_due = list(range(minute, int(last) + 1, 60))
    cron_late = [t - due for t, due in zip(cron_runs, cron_due)]
    missing += max(0, len(cron_due) - len(cron_runs))
    doubled += max(0, len(cron_runs) - len(cron_due))
    late += cron_late
    p99 = percentile(late, 99) if late else math.inf
    return [Row(
        f"lateness of cron and window-opening jobs, headless: p50 / p99 / max ms (n={n + len(cron_due)})",
        pct3(late), "—", "—", "p99 ≤ 5 ms", p99 <= 0.005 and missing == 0 and doubled == 0,
        [f"cron lateness: {n} window openings and {len(cron_due)} cron run(s) (cron alone: {pct3(cron_late)} ms), "
         f"missing {missing}, doubled {doubled}, {busy}"],
        raw={"ic": late, "cron": cron_late, "missing": missing, "doubled": doubled})]


def burst_phase(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    """`burst_jobs` daily jobs due at the same second, max_parallel 8: all run once, the first on time."""
    n = mode.burst_jobs
    d = ws.dir("burst")
    stamps = ws.dir("burst/stamps")
    due = math.ceil(time.time() + LEAD + 1)
    jobs = [{"name": f"b{i:03d}", "command": stamp_command(stamps / f"b{i:03d}"), "shell": True,
             "schedule_type": "daily", "schedule_time": hhmmss(due), "enabled": True} for i in range(n)]
    cfg = write_config(d / "burst.toml", jobs, max_parallel=8)
    log(f"burst: {n} jobs due at {hhmmss(due)}, max_parallel 8")
    daemon = Daemon(procs, d, cfg)
    history_dir = d / "logs" / "batch"

    def records() -> list[dict]:
        out = []
        for f in sorted(history_dir.glob("batch_*.jsonl")):
            for line in f.read_text().splitlines():
                if line.strip():
                    out.append(json.loads(line))
        return out

    load = MachineLoad()
    try:
        ready = daemon.wait_ready()
        if ready >= due:
            log(f"warning: insect-console was ready only {ready - due:.2f} s after the due time")
        sleep_until(due)
        done = wait_until(lambda: len(records()) >= n, timeout=120, interval=0.2)
        finished_at = time.time()
        time.sleep(1.5)  # anything doubled would show up now
        busy = load.done()
    finally:
        daemon.stop()
    recs = [r for r in records() if r.get("job_name", "").startswith("b")]
    by_job: dict[str, list[dict]] = {}
    for r in recs:
        by_job.setdefault(r["job_name"], []).append(r)
    starts = {f"b{i:03d}": read_stamps(stamps / f"b{i:03d}") for i in range(n)}
    ran = sum(1 for v in starts.values() if v)
    doubled = sum(max(0, len(v) - 1) for v in starts.values()) + sum(max(0, len(v) - 1) for v in by_job.values())
    lost = n - ran
    success = sum(1 for r in recs if r.get("status") == "success")
    first_starts = sorted(v[0] for v in starts.values() if v)
    first_late = first_starts[0] - due if first_starts else math.inf
    last_late = first_starts[-1] - due if first_starts else math.inf
    all_ok = lost == 0 and doubled == 0 and len(by_job) == n and success == n
    rows = [
        Row(f"burst: {n} jobs due at one second, max_parallel 8: ran / records / lost / doubled",
            f"{ran} / {len(recs)} / {lost} / {doubled}", target=f"{n} / {n} / 0 / 0", met=all_ok,
            notes=[f"burst: {success} success records; all done {'' if done else 'NOT '}within 120 s; "
                   f"last start {ms(last_late)} ms after the due second (p50 {ms(percentile([s - due for s in first_starts], 50))} ms); {busy}"],
            raw={"finished_after_s": finished_at - due}),
        Row("burst: first start lateness ms", ms(first_late), target="≤ 10 ms", met=first_late <= 0.010,
            raw={"first": first_late, "last": last_late}),
    ]
    return rows
