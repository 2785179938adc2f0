"""An idle daemon: CPU, wakeups and memory, next to the spec's loop and a bare python.

`IdleProbe.start()` starts the three and takes the first reading; other figures may run while
the window passes (an idle process's own CPU time and wakeups do not depend on what else the
machine does); `finish()` takes the second reading and ends them.
"""

from __future__ import annotations

import time

from bench.fixtures import DEFAULT_JOBS, Daemon, SpecLoop, write_spec_config
from bench.probes import CpuSample, by_thread, cpu_delta, cpu_sample, rss_of
from bench.procs import PY, Procs, Workspace
from bench.report import Mode, Row, log, mb, ratio

SETTLE = 2.0
"""Seconds after start before the window opens (start-up work, the first prune, are not idle)."""


class IdleProbe:
    def __init__(self, ws: Workspace, procs: Procs, mode: Mode) -> None:
        self.ws, self.procs, self.mode = ws, procs, mode

    def start(self) -> None:
        d = self.ws.dir("idle-ic")
        # no config yet: insect-console creates it with the four default jobs, as on first start
        self.daemon = Daemon(self.procs, d, d / "config" / "batch_config.toml")
        b = self.ws.dir("idle-spec")
        self.spec = SpecLoop(self.procs, b, write_spec_config(b / "batch_config.json", DEFAULT_JOBS))
        bare_dir = self.ws.dir("idle-bare")
        self.bare = self.procs.spawn([PY, "-c", "import schedule, psutil, time\nwhile True: time.sleep(3600)"], cwd=bare_dir)
        self.daemon.wait_ready()
        self.spec.wait_ready()
        time.sleep(SETTLE)
        self.a_ic: CpuSample = cpu_sample(self.daemon.pid)
        self.a_spec: CpuSample = cpu_sample(self.spec.pid)
        self.t0 = time.monotonic()
        log(f"idle: window of {self.mode.idle_s:.0f} s open (daemon pid {self.daemon.pid}, spec loop pid {self.spec.pid})")

    def finish(self) -> list[Row]:
        left = self.mode.idle_s - (time.monotonic() - self.t0)
        if left > 0:
            log(f"idle: {left:.0f} s of the window left")
            time.sleep(left)
        ic = cpu_delta(self.a_ic, cpu_sample(self.daemon.pid))
        spec = cpu_delta(self.a_spec, cpu_sample(self.spec.pid))
        ic_rss, spec_rss, bare_rss = rss_of(self.daemon.pid), rss_of(self.spec.pid), rss_of(self.bare.pid)
        try:
            threads = by_thread(ic, most=len(ic.per_thread))
        finally:
            self.daemon.stop()
            self.spec.stop()
            self.procs.end(self.bare)
        window = self.mode.idle_s
        rows = [
            Row(f"idle daemon, 4 default jobs, {window:.0f} s: CPU ms / wakeups",
                f"{ic.cpu_s * 1000:.1f} / {ic.wakeups}", f"{spec.cpu_s * 1000:.1f} / {spec.wakeups}",
                ratio(ic.cpu_s, spec.cpu_s), "CPU ≤ baseline; wakeups ≈ 0",
                ic.cpu_s <= spec.cpu_s,
                [f"idle: insect-console wakeups by thread: {threads}; psutil cpu_times: "
                 f"{ic.psutil_cpu_s * 1000:.0f} ms vs {spec.psutil_cpu_s * 1000:.0f} ms (10 ms ticks)"],
                raw={"ic_cpu_s": ic.cpu_s, "ic_wakeups": ic.wakeups, "spec_cpu_s": spec.cpu_s, "spec_wakeups": spec.wakeups}),
            Row("idle RSS of the daemon (baseline: bare python importing schedule, psutil)",
                mb(ic_rss), mb(bare_rss), ratio(ic_rss, bare_rss), "≤ 1.6x",
                bare_rss > 0 and ic_rss / bare_rss <= 1.6,
                [f"idle RSS: the spec's loop itself {mb(spec_rss)}"],
                raw={"ic": ic_rss, "bare": bare_rss, "spec": spec_rss}),
        ]
        return rows
