"""A Pi's quarter core: console start, console and daemon idle CPU, and `list`, in a CPU quota.

Each contender runs in a cgroup of its own capped at 25 ms of CPU per 100 ms (bench/quota.py),
next to a bare-python baseline in the same quota: `python -c "import textual.app"` for the
console, `python -c "import tomllib"` for `list`, the spec's loop for the idle daemon. The
daemon's idle window stays open while the console and `list` figures run (an idle process's
CPU time does not depend on what else the machine does; each quota is its own).
"""

from __future__ import annotations

import time

from bench import quota
from bench.console import console_available, idle_reading, open_console
from bench.fixtures import DEFAULT_JOBS, Daemon, SpecLoop, ic_command, write_config, write_spec_config
from bench.probes import MachineLoad, by_thread, cpu_delta, cpu_sample
from bench.procs import PY, Procs, Workspace, run_timed
from bench.report import Mode, Row, log, median, na_row, ratio

SETTLE = 2.0

FIGURES = {
    "start": ("¼ core: console start to a filled job table, 80x24", "≤ 2.0 s"),
    "console-idle": ("¼ core: console idle CPU, 4 jobs, jobs table with countdowns", "≤ 2 % of a core"),
    "daemon-idle": ("¼ core: idle daemon, 4 default jobs: CPU ms / wakeups (baseline: the spec's loop, same quota)", "CPU ≤ baseline; wakeups ≈ 0"),
    "list": ("¼ core: `insect-console list` wall (baseline: python -c 'import tomllib', same quota)", "≤ 1.3x"),
}


def pi_rows(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    kind, _root, why = quota.find_controller()
    if kind is None:
        log(f"pi: skipped: {why}")
        return [na_row(label, target, f"pi: skipped: {why}") for label, target in FIGURES.values()]
    made: list[quota.CpuQuota] = []

    def cgroup(name: str) -> quota.CpuQuota:
        q = quota.CpuQuota(name)
        made.append(q)
        return q

    rows: list[Row] = []
    try:
        d = ws.dir("pi-daemon")
        dq, sq = cgroup("daemon-idle"), cgroup("spec-idle")
        log(f"pi: CPU quota {dq.describe()}; idle daemon and spec loop for {mode.idle_s:.0f} s")
        daemon = Daemon(procs, d, d / "config" / "batch_config.toml", preexec_fn=dq.preexec())
        b = ws.dir("pi-spec")
        spec = SpecLoop(procs, b, write_spec_config(b / "batch_config.json", DEFAULT_JOBS), preexec_fn=sq.preexec())
        try:
            daemon.wait_ready(60)
            spec.wait_ready(60)
            time.sleep(SETTLE)
            a_ic, a_spec, t0 = cpu_sample(daemon.pid), cpu_sample(spec.pid), time.monotonic()
            ok, why_not = console_available()
            if ok:
                rows += _console(ws, procs, mode, cgroup)
            else:
                rows += [na_row(*FIGURES[k], f"pi: console: {why_not}") for k in ("start", "console-idle")]
            rows += _list(ws, mode, cgroup)
            left = mode.idle_s - (time.monotonic() - t0)
            if left > 0:
                log(f"pi: {left:.0f} s of the daemon's idle window left")
                time.sleep(left)
            ic, base = cpu_delta(a_ic, cpu_sample(daemon.pid)), cpu_delta(a_spec, cpu_sample(spec.pid))
        finally:
            daemon.stop()
            spec.stop()
        label, target = FIGURES["daemon-idle"]
        rows.append(Row(label.replace("jobs:", f"jobs, {mode.idle_s:.0f} s:"), f"{ic.cpu_s * 1000:.1f} / {ic.wakeups}",
                        f"{base.cpu_s * 1000:.1f} / {base.wakeups}", ratio(ic.cpu_s, base.cpu_s), target, ic.cpu_s <= base.cpu_s,
                        [f"pi idle daemon: wakeups by thread: {by_thread(ic)}; throttled periods: daemon {dq.throttled()[0]}, spec loop {sq.throttled()[0]}"],
                        raw={"ic_cpu_s": ic.cpu_s, "ic_wakeups": ic.wakeups, "spec_cpu_s": base.cpu_s, "spec_wakeups": base.wakeups}))
    finally:
        for q in made:
            q.remove()
    return rows


def _console(ws: Workspace, procs: Procs, mode: Mode, cgroup) -> list[Row]:
    """Console starts alternating with `import textual.app`, each in a fresh quota; the first console stays for the idle figure."""
    starts, bases, throttled, cpu_start, cpu_base = [], [], [], [], []
    idle = rss = None
    load = MachineLoad()
    for k in range(mode.pi_starts):
        q = cgroup(f"textual-{k}")
        base = run_timed([PY, "-c", "import textual.app"], cwd=ws.dir("pi-console"), preexec_fn=q.preexec())
        bases.append(base.wall)
        cpu_base.append(base.cpu)
        q.remove()
        d = ws.dir(f"pi-console{k}")
        cfg = write_config(d / "batch_config.toml", DEFAULT_JOBS)
        q = cgroup(f"console-{k}")
        app, took = open_console(procs, d, cfg, timeout=60, preexec=q.preexec())
        try:
            cpu_start.append(cpu_sample(app.pid).cpu_ns / 1e9)  # CPU time to the table (a few ms after it)
            starts.append(took)
            throttled.append(q.throttled())
            if k == 0:
                idle, rss = idle_reading(app.pid, mode.console_idle_s)
        finally:
            app.stop()
        q.remove()
    busy = load.done()
    t, b = median(starts), median(bases)
    log(f"pi: console filled table after {t:.2f} s (import textual.app {b:.2f} s); idle {idle.percent:.2f} % CPU")
    label, target = FIGURES["start"]
    rows = [Row(f"{label}, median of {len(starts)} (baseline: python -c 'import textual.app', same quota)", f"{t:.2f} s", f"{b:.2f} s",
                ratio(t, b), target, t <= 2.0,
                [f"pi console start: {', '.join(f'{x:.2f}' for x in starts)} s; import textual.app {', '.join(f'{x:.2f}' for x in bases)} s; "
                 f"throttled to the table: {', '.join(f'{n} periods / {s:.2f} s' for n, s in throttled)}; CPU time to the table "
                 f"{median(cpu_start) * 1000:.0f} ms (import textual.app {median(cpu_base) * 1000:.0f} ms): at 25 % of a core that alone is "
                 f"{median(cpu_start) * 4:.2f} s of wall; {busy}"],
                raw={"times": starts, "baseline": bases})]
    label, target = FIGURES["console-idle"]
    rows.append(Row(f"{label}, {mode.console_idle_s:.0f} s: % / wakeups", f"{idle.percent:.2f} % / {idle.wakeups}", target=target,
                    met=idle.percent <= 2.0, notes=[f"pi console idle: RSS {rss / 1e6:.1f} MB; wakeups by thread: {by_thread(idle)}"],
                    raw={"percent": idle.percent, "wakeups": idle.wakeups}))
    return rows


def _list(ws: Workspace, mode: Mode, cgroup) -> list[Row]:
    d = ws.dir("pi-list")
    cfg = write_config(d / "batch_config.toml", DEFAULT_JOBS)
    ic, base = ic_command(cfg, "list"), [PY, "-c", "import tomllib"]
    qi, qb = cgroup("list"), cgroup("tomllib")
    run_timed(ic, cwd=d, preexec_fn=qi.preexec())  # warm-up: page cache
    run_timed(base, cwd=d, preexec_fn=qb.preexec())
    load = MachineLoad()
    ic_t, base_t = [], []
    for _ in range(mode.cli_runs):
        ic_t.append(run_timed(ic, cwd=d, preexec_fn=qi.preexec()).wall)
        base_t.append(run_timed(base, cwd=d, preexec_fn=qb.preexec()).wall)
    a, b = median(ic_t), median(base_t)
    log(f"pi: list {a * 1000:.0f} ms vs import tomllib {b * 1000:.0f} ms")
    label, target = FIGURES["list"]
    return [Row(label.replace("wall", f"wall, median of {mode.cli_runs}"), f"{a * 1000:.0f} ms", f"{b * 1000:.0f} ms", ratio(a, b), target,
                a / b <= 1.3, [f"pi list: runs alternate with the baseline's; throttled periods: list {qi.throttled()[0]}, baseline {qb.throttled()[0]}; "
                               f"{load.done()}"], raw={"ic": ic_t, "baseline": base_t})]
