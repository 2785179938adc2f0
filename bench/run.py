"""Run the benchmarks and print one table: `python -m bench [--quick]` or `python bench/run.py`.

The full mode takes about 15 minutes on a quiet machine, `--quick` about 6. Progress goes to
stderr, the table (Markdown, ready for the README) to stdout. Every process started is ended at
the end, also on Ctrl-C or an error, the pi group's cgroups are removed, and so is the temp dir
(`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import MachineLoad, loadavg  # noqa: E402
from bench.fixtures import warm_bytecode  # noqa: E402
from bench.procs import Procs, Workspace, use_bytecode_cache  # noqa: E402
from bench.report import FULL, Mode, QUICK, Row, log, na_row  # noqa: E402

GROUPS = ("scheduling", "idle", "list", "history", "output", "burst", "console", "pi", "scale", "writes", "attached")

ORDER = [
    "lateness of at-time jobs, headless",
    "lateness, console open",
    "interval drift",
    "idle daemon",
    "idle RSS",
    "`insect-console list` wall, median",
    "`insect-console list` wall, full core",
    "console: start",
    "console idle CPU",
    "history CLI, newest",
    "history CLI, --job",
    "history CLI, newest 50 of 1,000 records followed",
    "history in the console (h)",
    "history in the console, one",
    "output: a job",
    "output: engine peak RSS",
    "console RSS while",
    "burst: 2",
    "burst: first",
    "¼ core: console start",
    "¼ core: console idle",
    "¼ core: idle daemon",
    "¼ core: `insect-console list`",
    "scale:",
    "writes:",
    "attached console",
]


def _order(row: Row) -> int:
    for i, prefix in enumerate(ORDER):
        if row.figure.startswith(prefix):
            return i
    return len(ORDER)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def render(rows: list[Row], mode: Mode, started: dt.datetime, took: float, load: str) -> str:
    head = ["figure", "insect-console", "baseline (same run)", "ratio", "target", "met?"]
    lines = [
        f"insect-console benchmarks, {mode.name} mode ({'python -m bench --quick' if mode is QUICK else 'python -m bench'}), "
        f"{started:%Y-%m-%d %H:%M}, {machine()}, {took:.0f} s; {load}",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    for r in sorted(rows, key=_order):
        met = "n/a" if r.met is None else ("yes" if r.met else "**NO**")
        lines.append("| " + " | ".join(x.replace("|", "/") for x in (r.figure, r.value, r.baseline, r.ratio, r.target, met)) + " |")
    notes = [n for r in sorted(rows, key=_order) for n in r.notes]
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def _guard(name: str, fn, rows: list[Row]):
    """Run one group; an error becomes an n/a row and the run goes on.

    What earlier groups wrote is flushed first: the history group leaves ~400 MB of dirty pages,
    whose writeback could otherwise be timed as part of the output group's run that writes a file.
    """
    t = time.monotonic()
    os.sync()
    if time.monotonic() - t > 0.5:
        log(f"{name}: flushing earlier groups' writes took {time.monotonic() - t:.1f} s (not timed)")
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception as e:
        log(f"{name}: failed: {e!r}")
        traceback.print_exc(file=sys.stderr)
        rows.append(na_row(f"{name} (failed)", "—", f"{name}: failed: {e}"))
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows, smaller data (about 6 minutes)")
    parser.add_argument("--only", help=f"comma-separated groups to run: {','.join(GROUPS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, stamps, logs) for a look afterwards")
    parser.add_argument("--json", metavar="FILE", help="also write every figure's raw numbers to FILE")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    groups = set(GROUPS) if not args.only else {g.strip() for g in args.only.split(",")}
    unknown = groups - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}; the groups are {', '.join(GROUPS)}")

    from bench import attached, cli, console, idle, pi, quota, scale, timing, writes

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (`cmd &`)
    started, t0 = dt.datetime.now(), time.monotonic()
    log(f"{mode.name} mode: {machine()}")
    load_start, whole = loadavg(), MachineLoad()
    ws, procs = Workspace(keep=args.keep), Procs()
    rows: list[Row] = []
    interrupted = False
    try:
        use_bytecode_cache(ws.dir("pycache"))
        log(f"bytecode of insect-console and its libraries compiled into the run's cache in {warm_bytecode(ws.root):.1f} s")
        if "scheduling" in groups:
            rows += _guard("scheduling", lambda: timing.scheduling_phase(ws, procs, mode), rows) or []
        probe = None
        if "idle" in groups:
            probe = idle.IdleProbe(ws, procs, mode)
            if _guard("idle", probe.start, rows) is None and not hasattr(probe, "t0"):
                probe = None
        # the idle window stays open while the CLI figures run (an idle process's own CPU time
        # and wakeups do not depend on the rest of the machine)
        if "list" in groups:
            rows += _guard("list", lambda: cli.list_figure(ws, procs, mode), rows) or []
        history = None
        if "history" in groups:
            got = _guard("history", lambda: cli.history_figures(ws, procs, mode), rows)
            if got:
                rows += got[0]
                history = got[1]
        if "output" in groups:
            rows += _guard("output", lambda: cli.output_figure(ws, procs, mode), rows) or []
        if probe is not None:
            rows += _guard("idle", probe.finish, rows) or []
        if "burst" in groups:
            rows += _guard("burst", lambda: timing.burst_phase(ws, procs, mode), rows) or []
        if "console" in groups:
            rows += _guard("console", lambda: console.console_rows(ws, procs, mode, history), rows) or []
        if "pi" in groups:
            rows += _guard("pi", lambda: pi.pi_rows(ws, procs, mode), rows) or []
        if "scale" in groups:
            rows += _guard("scale", lambda: scale.scale_rows(ws, procs, mode), rows) or []
        if "writes" in groups:
            rows += _guard("writes", lambda: writes.writes_rows(ws, procs, mode), rows) or []
        if "attached" in groups:
            rows += _guard("attached", lambda: attached.attached_rows(ws, procs, mode), rows) or []
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: ending every process started, then the table so far")
    finally:
        procs.end_all()
        left = quota.remove_all()
        if left:
            log(f"warning: could not remove the cgroup(s) {', '.join(left)}")
        ws.cleanup()
    took = time.monotonic() - t0
    print(render(rows, mode, started, took, f"load average {load_start} at the start, {loadavg()} at the end; {whole.done()} over the run"))
    if args.json:
        Path(args.json).write_text(json.dumps({"mode": mode.name, "started": started.isoformat(), "machine": machine(),
                                               "rows": [r.__dict__ for r in rows]}, indent=1, default=str))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
