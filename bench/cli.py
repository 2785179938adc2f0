"""The CLI: `list` wall time, `history` over a long history, a job writing a lot of output."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.fixtures import DEFAULT_JOBS, ic_command, write_config
from bench.probes import MachineLoad
from bench.procs import PY, Procs, Workspace, run_timed
from bench.report import Mode, Row, log, mb, median, ratio

RARE_JOB = "rare_probe"
NEWEST_JOB = "newest_probe"
HISTORY_DAYS = 30


def list_figure(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    """`list` against two baselines, runs alternating: python importing what the spec's loop
    imports (schedule, psutil, tomllib), and a bare `python -c "import tomllib"` (what reading
    the config alone needs)."""
    d = ws.dir("list")
    cfg = write_config(d / "batch_config.toml", DEFAULT_JOBS)
    ic = ic_command(cfg, "list")
    base = [PY, "-c", "import schedule, psutil, tomllib"]
    bare = [PY, "-c", "import tomllib"]
    for argv in (ic, base, bare):  # warm-up: page cache, .pyc files
        run_timed(argv, cwd=d)
    load = MachineLoad()
    ic_t, base_t, bare_t = [], [], []
    for _ in range(mode.cli_runs):
        ic_t.append(run_timed(ic, cwd=d).wall)
        base_t.append(run_timed(base, cwd=d).wall)
        bare_t.append(run_timed(bare, cwd=d).wall)
    a, b, c = median(ic_t), median(base_t), median(bare_t)
    busy = load.done()
    log(f"list: {a * 1000:.0f} ms vs python importing schedule, psutil {b * 1000:.0f} ms, bare tomllib {c * 1000:.0f} ms")
    return [Row(f"`insect-console list` wall, median of {mode.cli_runs} (baseline: python importing schedule, psutil, tomllib)",
                f"{a * 1000:.0f} ms", f"{b * 1000:.0f} ms", ratio(a, b), "≤ 2.5x", a / b <= 2.5,
                [f"list: runs alternate with the baselines'; {busy}"], raw={"ic": ic_t, "baseline": base_t}),
            Row(f"`insect-console list` wall, full core, median of {mode.cli_runs} (baseline: python -c 'import tomllib')",
                f"{a * 1000:.0f} ms", f"{c * 1000:.0f} ms", ratio(a, c), "≤ 1.3x", a / c <= 1.3, raw={"ic": ic_t, "baseline": bare_t})]


# -- history ---------------------------------------------------------------------------------

_LINE = ('{"job_name": "%s", "start_time": "%sT%s.%03d%s", "end_time": "%sT%s.%03d%s", "status": "%s", "output": "%s", '
         '"error": %s, "exit_code": %s, "duration_s": %.3f, "trigger": "%s", "output_file": "%s", "run_id": "%s"}\n')
_JOBS = ("hourly_detection", "daily_analysis", "weekly_cleanup", "daily_backup", "camera_check", "upload_images", "sensor_poll")


def generate_history(log_dir: Path, records: int, days: int = HISTORY_DAYS) -> tuple[list[Path], list[dt.datetime]]:
    """`records` run records in `days` daily files ending today, written as the engine writes them.

    The fields and separators are those of `Engine._record` + `history.append_record`. Ten
    records of RARE_JOB sit in the oldest files (a filter for it reads everything); the newest
    record is NEWEST_JOB. Returns the files (oldest first) and RARE_JOB's start times.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_dir = log_dir / "output"
    tz = dt.datetime.now().astimezone().strftime("%z")
    tz = f"{tz[:3]}:{tz[3:]}"
    today = dt.date.today()
    per_day = records // days
    files = []
    rare: list[dt.datetime] = []
    serial = 0
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        n = per_day + (records - per_day * days if back == 0 else 0)
        ymd, ymd_compact = day.isoformat(), f"{day:%Y%m%d}"
        step = 86400 / n
        lines = []
        for i in range(n):
            serial += 1
            secs = int(i * step)
            h, rem = divmod(secs, 3600)
            m, s = divmod(rem, 60)
            hms = f"{h:02d}:{m:02d}:{s:02d}"
            hms_c = f"{h:02d}{m:02d}{s:02d}"
            job = _JOBS[serial % len(_JOBS)]
            if back >= days - 10 and i == 7:
                job = RARE_JOB
                rare.append(dt.datetime.combine(day, dt.time(h, m, s)))
            if back == 0 and i == n - 1:
                job = NEWEST_JOB
            failed = serial % 37 == 0
            status = "error" if failed else "success"
            error = '"exit status 1: camera busy"' if failed else "null"
            run_id = f"{ymd_compact}T{hms_c}-{serial % 0xFFFFFF:06x}"
            ms_ = serial % 1000
            lines.append(_LINE % (job, ymd, hms, ms_, tz, ymd, hms, ms_, tz, status,
                                  f"frame {serial}: {serial % 7} insects detected (conf 0.{serial % 97:02d})\\n",
                                  error, 1 if failed else 0, 0.01 + (serial % 500) / 100, "schedule",
                                  f"{out_dir}/{ymd_compact}/{job}-{hms_c}-{run_id[-6:]}.log", run_id))
        path = log_dir / f"batch_{ymd_compact}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.chmod(path, 0o600)
        files.append(path)
    return files, rare


@dataclass
class History:
    config: Path  # its first job is RARE_JOB, so the console's cursor starts on it
    records: int
    rare_starts: list[dt.datetime]


def history_figures(ws: Workspace, procs: Procs, mode: Mode) -> tuple[list[Row], History]:
    """Rows for `history --limit 50` and `history --job RARE --limit 50`; returns the history for the console."""
    d = ws.dir("history")
    log(f"history: writing {mode.history_records:,} records in {HISTORY_DAYS} daily files")
    t0 = time.perf_counter()
    files, rare = generate_history(d / "logs" / "batch", mode.history_records)
    size = sum(f.stat().st_size for f in files)
    log(f"history: {size / 1e6:.0f} MB written in {time.perf_counter() - t0:.1f} s")
    rare_job = {"name": RARE_JOB, "command": "true", "schedule_type": "daily", "schedule_time": "04:00", "enabled": True}
    cfg = write_config(d / "batch_config.toml", [rare_job, *DEFAULT_JOBS])
    newest = files[-1]

    def measure(argv: list[str]) -> tuple[float, int]:
        run_timed(argv, cwd=d)  # warm-up: the files are in the page cache for every contender
        runs = [run_timed(argv, cwd=d) for _ in range(mode.history_runs)]
        return median([r.wall for r in runs]), max(r.peak_rss for r in runs)

    load = MachineLoad()
    ic_t, ic_rss = measure(ic_command(cfg, "history", "--limit", "50"))
    base_t, _ = measure(["tail", "-n", "50", str(newest)])
    job_t, job_rss = measure(ic_command(cfg, "history", "--job", RARE_JOB, "--limit", "50"))
    grep = f"grep -h -F '\"job_name\": \"{RARE_JOB}\"' {' '.join(str(f) for f in files)} | tail -n 50"
    gbase_t, _ = measure(["sh", "-c", grep])
    n = f"{mode.history_records:,}"
    log(f"history: newest 50 {ic_t:.2f} s, by job {job_t:.2f} s")
    rows = [
        Row(f"history CLI, newest 50 of {n}: wall s / peak RSS (baseline: tail -n 50 of the newest file)",
            f"{ic_t:.2f} s / {mb(ic_rss)}", f"{base_t:.3f} s", ratio(ic_t, base_t), "≤ 0.5 s, ≤ 100 MB",
            ic_t <= 0.5 and ic_rss <= 100e6, raw={"ic": ic_t, "ic_rss": ic_rss, "baseline": base_t}),
        Row(f"history CLI, --job (10 matches in {n}, all read): wall s / peak RSS (baseline: grep -F | tail)",
            f"{job_t:.2f} s / {mb(job_rss)}", f"{gbase_t:.3f} s", ratio(job_t, gbase_t), "≤ 3 s, ≤ 100 MB",
            job_t <= 3.0 and job_rss <= 100e6,
            [f"history: {HISTORY_DAYS} files, {size / 1e6:.0f} MB, {size / mode.history_records:.0f} bytes a record; "
             f"medians of {mode.history_runs} after a warm-up (files in the page cache); {load.done()}"],
            raw={"ic": job_t, "ic_rss": job_rss, "baseline": gbase_t}),
    ]
    rows.append(sparse_history_row(ws, mode))
    return rows, History(cfg, mode.history_records, rare)


def sparse_history_row(ws: Workspace, mode: Mode) -> Row:
    """`history --limit 50` when the newest file ends in `sparse_gb` GiB of NUL bytes (a power cut
    during an append can leave such a tail: the size was updated, the data never written).

    The tail is sparse (`truncate`), so it costs no disk. The CLI is stopped after
    `sparse_timeout_s` or past 1 GB of RSS; the row then says so and its figures are lower bounds.
    """
    d = ws.dir("history-sparse")
    files, _rare = generate_history(d / "logs" / "batch", 1000, days=1)
    newest = files[-1]
    records_size = newest.stat().st_size
    tail = int(mode.sparse_gb * 2**30)
    os.truncate(newest, records_size + tail)
    cfg = write_config(d / "batch_config.toml", DEFAULT_JOBS)
    log(f"history: newest 50 of 1,000 records followed by {mode.sparse_gb:g} GiB of NUL bytes (sparse)")
    r = run_timed(ic_command(cfg, "history", "--limit", "50"), cwd=d, timeout=mode.sparse_timeout_s, max_rss=1_000_000_000)
    log(f"history, NUL tail: {r.wall:.2f} s, peak RSS {r.peak_rss / 1e6:.0f} MB" + (f" ({r.stopped})" if r.stopped else ""))
    bound = "≥ " if r.stopped else ""
    return Row(f"history CLI, newest 50 of 1,000 records followed by a {mode.sparse_gb:g} GiB sparse tail of NUL bytes: wall s / peak RSS",
               f"{bound}{r.wall:.2f} s / {bound}{mb(r.peak_rss)}", target="≤ 2 s, ≤ 50 MB",
               met=r.stopped is None and r.rc == 0 and r.wall <= 2.0 and r.peak_rss <= 50e6,
               notes=[f"history, NUL tail: {records_size / 1e3:.0f} kB of records, then {tail:,} NUL bytes; "
                      + (f"{r.stopped}" if r.stopped else f"exit {r.rc}")],
               raw={"wall": r.wall, "rss": r.peak_rss, "stopped": r.stopped})


# -- output ------------------------------------------------------------------------------------

PRODUCER = """\
import sys
total = int(float(sys.argv[1]) * 1_000_000)
write = sys.stdout.write
n = 0
i = 0
while n < total:
    line = f"{i:09d} frame ok: {i % 7} insects detected, conf 0.{i % 97:02d}, box 120x80 at ({i % 640}, {i % 480}) ....\\n"
    write(line)
    n += len(line)
    i += 1
"""


def write_producer(d: Path) -> Path:
    path = d / "producer.py"
    path.write_text(PRODUCER)
    return path


def output_figure(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    """A job printing `output_mb` MB of ~100-byte lines, run by `run-job --local`, vs the job alone."""
    d = ws.dir("output")
    producer = write_producer(d)
    big, small = mode.output_mb, max(1, mode.output_mb // 10)
    jobs = [
        {"name": "big", "command": f"{PY} {producer} {big}", "schedule_type": "daily", "schedule_time": "04:00", "enabled": True},
        {"name": "small", "command": f"{PY} {producer} {small}", "schedule_type": "daily", "schedule_time": "04:00", "enabled": True},
    ]
    cfg = write_config(d / "batch_config.toml", jobs)
    log(f"output: a job writing {big} MB, through `run-job --local` and alone, interleaved")
    load = MachineLoad()
    alone, through = [], []
    size_seen = 0
    for _ in range(mode.output_pairs):
        alone.append(run_timed([PY, str(producer), str(big)], cwd=d))
        through.append(run_timed(ic_command(cfg, "run-job", "--local", "big"), cwd=d))
        for f in (d / "logs" / "batch" / "output").rglob("big-*.log"):
            size_seen = f.stat().st_size
            f.unlink()
    # references, not baselines: what merely reading the job's stdout through a pipe costs on
    # this machine, and what the job costs writing straight to a file
    piped = run_timed(["sh", "-c", f"{PY} {producer} {big} | cat > /dev/null"], cwd=d)
    to_file = run_timed(["sh", "-c", f"{PY} {producer} {big} > to_file.log"], cwd=d)
    (d / "to_file.log").unlink(missing_ok=True)
    busy = load.done()
    small_run = run_timed(ic_command(cfg, "run-job", "--local", "small"), cwd=d)
    base_t = median([r.wall for r in alone])
    ic_t = median([r.wall for r in through])
    ic_rss = max(r.peak_rss for r in through)
    rc = max(r.rc for r in through)
    small_rss = small_run.peak_rss
    out_size = size_seen
    log(f"output: {ic_t:.2f} s vs {base_t:.2f} s alone; peak RSS {ic_rss / 1e6:.0f} MB ({small} MB run: {small_rss / 1e6:.0f} MB)")
    grew = ic_rss - small_rss
    return [
        Row(f"output: a job writing {big} MB of lines, `run-job --local` > /dev/null: wall, median of {mode.output_pairs} (baseline: the job > /dev/null)",
            f"{ic_t:.2f} s", f"{base_t:.2f} s", ratio(ic_t, base_t), "≤ 1.2x", rc == 0 and ic_t / base_t <= 1.2,
            [f"output: {big} MB in {ic_t:.1f} s = {big / ic_t:.0f} MB/s through insect-console (output file {out_size / 1e6:.0f} MB, exit {rc}); "
             f"runs alternate: the job alone {' / '.join(f'{r.wall:.2f}' for r in alone)} s, through insect-console "
             f"{' / '.join(f'{r.wall:.2f}' for r in through)} s; references: `job | cat > /dev/null` {piped.wall:.2f} s, `job > file` {to_file.wall:.2f} s; "
             f"CPU (load-independent): the job alone {median([r.cpu for r in alone]):.2f} s, job + insect-console {median([r.cpu for r in through]):.2f} s; {busy}"],
            raw={"ic": ic_t, "baseline": base_t}),
        Row(f"output: engine peak RSS, {big} MB run vs {small} MB run",
            f"{mb(ic_rss)}", f"{mb(small_rss)} ({small} MB run)", ratio(ic_rss, small_rss), "bounded: grows < 10 MB",
            grew < 10e6, raw={"big": ic_rss, "small": small_rss}),
    ]
