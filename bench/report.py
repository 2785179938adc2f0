"""What a run says: progress on stderr, the rows of the table, and how numbers are shown.

Kept apart from everything that starts or reads processes so that the table's shape (a `Row`,
its ratio and formatting) and the run's plan (`Mode`: how many samples, how long a window) can
be read, and changed, in one place.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- mode ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    name: str
    lateness_samples: int  # at-time jobs, one per second
    drift_runs: int  # runs of the 1 s interval job
    idle_s: float  # idle window of the daemon and of the spec's loop
    cli_runs: int  # runs of `list` (and of its baseline) for a median
    history_records: int
    history_runs: int
    output_mb: int
    burst_jobs: int
    console_starts: int
    console_idle_s: float
    console_lateness_samples: int
    baseline_loops: int = 4  # spec loops at stratified phases for the lateness baseline
    output_pairs: int = 3  # alternating runs of the output job alone and through insect-console
    side_by_side: bool = False  # run the spec's loops at the same time as insect-console (saves time)
    # round 2: a Pi's quarter core, 1,000 jobs, writes, a slow daemon
    pi_starts: int = 2  # console starts (and `import textual.app` baselines) in the CPU quota
    scale_sizes: tuple[int, ...] = (4, 100, 1000)
    scale_idle_s: float = 15  # idle window of the daemons with 4 / 100 / 1,000 jobs
    scale_console_starts: int = 1  # console starts per size
    scale_list_runs: int = 5  # runs of `list` per size for a median
    scale_console_idle_s: float = 6
    scale_reloads: int = 3
    writes_runs: int = 5  # runs of the silent job counted
    writes_idle_s: float = 15  # idle window of the traced daemon (scaled to an hour)
    attached_delay_s: float = 2.0  # the daemon's answers are held this long
    attached_window_s: float = 6  # keys pressed every 50 ms for this long: frame gaps
    attached_keys: int = 3  # presses of `/` timed until the filter bar shows
    sparse_gb: float = 2.0  # NUL bytes after the records of the newest history file (GiB, sparse)
    sparse_timeout_s: float = 20  # the history CLI is stopped after this long (or past 1 GB RSS)


QUICK = Mode("quick", lateness_samples=16, drift_runs=16, idle_s=15, cli_runs=5, history_records=100_000, history_runs=3,
             output_mb=20, burst_jobs=200, console_starts=1, console_idle_s=6, console_lateness_samples=8, side_by_side=True)
FULL = Mode("full", lateness_samples=120, drift_runs=50, idle_s=60, cli_runs=15, history_records=1_000_000, history_runs=5,
            output_mb=200, burst_jobs=200, console_starts=5, console_idle_s=30, console_lateness_samples=60, baseline_loops=8, output_pairs=5,
            pi_starts=5, scale_idle_s=60, scale_console_starts=2, scale_list_runs=7, scale_console_idle_s=20, scale_reloads=5, writes_runs=20, writes_idle_s=60,
            attached_window_s=15, attached_keys=5, sparse_timeout_s=30)


# -- results --------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table. `met` is True/False, or None when there is no verdict (n/a)."""

    figure: str
    value: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def na_row(figure: str, target: str, why: str) -> Row:
    return Row(figure, "n/a", target=target, met=None, notes=[why])


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    if b <= 0:
        return "∞" if a > 0 else "—"
    return f"{a / b:.2f}x"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"
