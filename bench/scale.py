"""4, 100 and 1,000 jobs: what the daemon, `list` and the console cost as the job table grows.

The jobs are a mix of intervals of 1-24 h, daily and weekly times, none due within the next
30 minutes (so nothing runs during the figures). One daemon per size runs from the start; its
idle window (CPU, wakeups, RSS) is read on a thread at its end while `list` runs against the
running daemons and the console runs on copies of the configs (its own engine). Then each
daemon is timed reloading its config: the file is replaced (written beside it, renamed over
it) and the time is taken until the daemon's `config_reloaded` event arrives on its control
socket.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import shutil
import socket
import threading
import time
from pathlib import Path

from bench.console import console_available, starts_and_idle
from bench.fixtures import Daemon, ic_command, write_config
from bench.probes import CpuDelta, MachineLoad, by_thread, cpu_delta, cpu_sample, rss_of
from bench.procs import Procs, Workspace, run_timed
from bench.report import Mode, Row, log, mb, median, na_row, ratio

SETTLE = 3.0
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def scale_jobs(n: int, now: dt.datetime | None = None, first_interval_h: int = 1) -> list[dict]:
    """`n` jobs: interval (1-24 h), daily, weekly in turn; fixed times 30 min to 23.5 h from now."""
    now = now or dt.datetime.now()
    jobs = []
    for i in range(n):
        kind = ("interval", "daily", "weekly")[i % 3]
        if kind == "interval":
            when = str(3600 * ((first_interval_h - 1 + i // 3) % 24 + 1))
        else:
            at = (now + dt.timedelta(minutes=30 + (i * 37) % (23 * 60))).strftime("%H:%M")
            when = at if kind == "daily" else f"{WEEKDAYS[(i // 3) % 7]} {at}"
        jobs.append({"name": f"scale{i:04d}", "command": "true", "schedule_type": kind, "schedule_time": when, "enabled": True})
    return jobs


def names_on_screen(jobs: list[dict]) -> list[str]:
    """What shows that the job table is filled: the first rows' names (all of them for 4 jobs)."""
    return [j["name"] for j in jobs[:4]]


class ControlEvents:
    """A subscriber on a daemon's control socket (one JSON object a line; see insect_console/control.py)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self._buf = b""
        self.sock.sendall(b'{"id": 1, "cmd": "subscribe"}\n')
        if self.wait(lambda m: m.get("id") == 1, timeout) is None:
            raise RuntimeError(f"no answer to subscribe on {path} within {timeout} s")

    def wait(self, match, timeout: float) -> float | None:
        """The perf_counter time at which a message matching `match` arrived, or None."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if match(message):
                    return time.perf_counter()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buf += data

    def close(self) -> None:
        self.sock.close()


def _reload_times(daemon: Daemon, jobs: list[dict], times: int) -> list[float]:
    """Replace the config `times` times (its first job's interval changed back and forth); the
    seconds from the rename to the daemon's `config_reloaded` event."""
    events = ControlEvents(daemon.socket)
    out = []
    try:
        for k in range(times):
            changed = [dict(jobs[0], schedule_time=str(int(jobs[0]["schedule_time"]) + 3600 * ((k % 2) + 1))), *jobs[1:]] if jobs else []
            tmp = write_config(daemon.config.with_name(f".reload-{k}.toml"), changed)
            t0 = time.perf_counter()
            os.replace(tmp, daemon.config)
            got = events.wait(lambda m: m.get("event") == "config_reloaded", 60)
            if got is None:
                raise RuntimeError(f"no config_reloaded event within 60 s: {daemon.log_tail()}")
            out.append(got - t0)
            time.sleep(0.3)
    finally:
        events.close()
    return out


class _Window:
    """The daemons' idle window, closed by a thread exactly `seconds` after it opened."""

    def __init__(self, daemons: dict[int, Daemon], seconds: float) -> None:
        self.daemons, self.seconds = daemons, seconds
        self.a = {n: cpu_sample(d.pid) for n, d in daemons.items()}
        self.t0 = time.monotonic()
        self.cpu: dict[int, CpuDelta] = {}
        self.rss: dict[int, int] = {}
        self._thread = threading.Thread(target=self._close, daemon=True)
        self._thread.start()

    def _close(self) -> None:
        time.sleep(max(0.0, self.t0 + self.seconds - time.monotonic()))
        for n, d in self.daemons.items():
            self.cpu[n] = cpu_delta(self.a[n], cpu_sample(d.pid))
            self.rss[n] = rss_of(d.pid)

    def wait(self) -> None:
        left = self.t0 + self.seconds - time.monotonic()
        if left > 1:
            log(f"scale: {left:.0f} s of the daemons' idle window left")
        self._thread.join()


def _three(values: dict[int, float], fmt) -> str:
    return " / ".join(fmt(values[n]) for n in sorted(values))


def scale_rows(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    sizes = mode.scale_sizes
    small, big = sizes[0], sizes[-1]
    label = " / ".join(f"{n:,}" for n in sizes) + " jobs"
    configs = {}
    for n in sizes:
        d = ws.dir(f"scale-{n}")
        configs[n] = (d, scale_jobs(n), write_config(d / "batch_config.toml", scale_jobs(n)))
    log(f"scale: daemons with {label}, idle window {mode.scale_idle_s:.0f} s")
    daemons = {n: Daemon(procs, d, cfg) for n, (d, _jobs, cfg) in configs.items()}
    rows: list[Row] = []
    try:
        started = {}
        for n, daemon in daemons.items():
            t = daemon.wait_ready(120) - daemon.started_at
            started[n] = t
        time.sleep(SETTLE)
        window = _Window(daemons, mode.scale_idle_s)

        # `list` against the running daemons, sizes in turn
        load = MachineLoad()
        walls: dict[int, list[float]] = {n: [] for n in sizes}
        for n in sizes:
            run_timed(ic_command(configs[n][2], "list"), cwd=configs[n][0])  # warm-up
        for _ in range(mode.scale_list_runs):
            for n in sizes:
                walls[n].append(run_timed(ic_command(configs[n][2], "list"), cwd=configs[n][0]).wall)
        list_t = {n: median(w) for n, w in walls.items()}
        list_busy = load.done()
        log(f"scale: list {_three(list_t, lambda x: f'{x * 1000:.0f}')} ms")

        # the console on a copy of each config (its own engine: the daemons hold theirs)
        ok, why = console_available()
        console: dict[int, tuple[list[float], CpuDelta, int]] = {}
        if ok:
            for n in sizes:
                d = ws.dir(f"scale-{n}-console")
                cfg = d / "batch_config.toml"
                shutil.copy2(configs[n][2], cfg)
                times, idle, rss = starts_and_idle(procs, lambda _k: (d, cfg), mode.scale_console_starts, mode.scale_console_idle_s,
                                                   names_on_screen(configs[n][1]), timeout=120)
                console[n] = (times, idle, rss)
                log(f"scale: console, {n:,} jobs: table after {median(times):.2f} s, idle {idle.percent:.2f} % CPU, RSS {rss / 1e6:.0f} MB")
        window.wait()
        reloads = {n: _reload_times(daemons[n], configs[n][1], mode.scale_reloads) for n in sizes}
        logged = {n: b"config reloaded" in daemons[n].log_path.read_bytes() for n in sizes}
        log(f"scale: reload {_three({n: median(r) for n, r in reloads.items()}, lambda x: f'{x * 1000:.0f}')} ms")
    finally:
        for daemon in daemons.values():
            daemon.stop()

    cpu = {n: window.cpu[n].cpu_s * 1000 for n in sizes}
    wake = {n: window.cpu[n].wakeups for n in sizes}
    w = f"{mode.scale_idle_s:.0f} s"
    rows.append(Row(f"scale: idle daemon, {w}, {label}: CPU ms", _three(cpu, lambda x: f"{x:.1f}"), f"{cpu[small]:.1f} ({small} jobs)",
                    ratio(cpu[big], cpu[small]), f"≤ 1.5x, {big:,} vs {small} (or within 1 ms)",
                    cpu[big] <= max(1.5 * cpu[small], cpu[small] + 1.0),
                    [f"scale idle daemons: started (log says so) after {_three(started, lambda x: f'{x:.2f}')} s; wakeups by thread, "
                     f"{big:,} jobs: {by_thread(window.cpu[big])}"], raw={"cpu_ms": cpu}))
    rows.append(Row(f"scale: idle daemon, {w}, {label}: wakeups", _three(wake, str), f"{wake[small]} ({small} jobs)",
                    ratio(wake[big], wake[small]), f"≤ 1.5x, {big:,} vs {small} (or within 2)",
                    wake[big] <= max(1.5 * wake[small], wake[small] + 2), raw={"wakeups": wake}))
    rss = window.rss
    rows.append(Row(f"scale: daemon RSS, {label}", _three(rss, mb), f"{mb(rss[small])} ({small} jobs)", ratio(rss[big], rss[small]),
                    f"{big:,} jobs ≤ 40 MB", rss[big] <= 40e6, raw={"rss": rss}))
    rows.append(Row(f"scale: `list` wall, median of {mode.scale_list_runs}, daemon running, {label}", _three(list_t, lambda x: f"{x * 1000:.0f} ms"),
                    f"{list_t[small] * 1000:.0f} ms ({small} jobs)", ratio(list_t[big], list_t[small]), f"≤ 1.5x, {big:,} vs {small}",
                    list_t[big] / list_t[small] <= 1.5, [f"scale list: sizes in turn; {list_busy}"], raw={"walls": walls}))
    if console:
        start = {n: median(v[0]) for n, v in console.items()}
        pct = {n: v[1].percent for n, v in console.items()}
        crss = {n: v[2] for n, v in console.items()}
        rows.append(Row(f"scale: console start to a filled job table (first rows drawn), median of {mode.scale_console_starts}, {label}",
                        _three(start, lambda x: f"{x:.2f} s"), f"{start[small]:.2f} s ({small} jobs)", ratio(start[big], start[small]),
                        raw={"start": start}))
        rows.append(Row(f"scale: console idle CPU, table on screen, {mode.scale_console_idle_s:.0f} s, {label}: % of a core",
                        _three(pct, lambda x: f"{x:.2f} %"), f"{pct[small]:.2f} % ({small} jobs)", ratio(pct[big], pct[small]),
                        f"≤ 2x, {big:,} vs {small}", pct[big] <= 2 * pct[small],
                        [f"scale console idle, {big:,} jobs: {console[big][1].wakeups} wakeups; by thread: {by_thread(console[big][1])}"],
                        raw={"percent": pct}))
        rows.append(Row(f"scale: console RSS, {label}", _three(crss, mb), f"{mb(crss[small])} ({small} jobs)", ratio(crss[big], crss[small]),
                        f"{big:,} jobs ≤ 90 MB", crss[big] <= 90e6, raw={"rss": crss}))
    else:
        rows += [na_row(f"scale: console {what}, {label}", "—", f"scale: console: {why}") for what in ("start", "idle CPU", "RSS")]
    rel = {n: median(r) for n, r in reloads.items()}
    rows.append(Row(f"scale: one reload (config replaced → config_reloaded event), median of {mode.scale_reloads}, {label}",
                    _three(rel, lambda x: f"{x * 1000:.0f} ms"), f"{rel[small] * 1000:.0f} ms ({small} jobs)", ratio(rel[big], rel[small]),
                    notes=[f"scale reload: every run {', '.join(f'{n:,}: ' + ' / '.join(f'{x * 1000:.0f}' for x in r) for n, r in reloads.items())} ms; "
                           f"'config reloaded' in each daemon's log: {all(logged.values())}"], raw={"reloads": reloads}))
    return rows
