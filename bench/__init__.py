"""insect-console's benchmark suite: `python -m bench [--quick]` (or `python bench/run.py`).

Every figure runs insect-console for real (the headless daemon, the CLI, the console under a
pseudo-terminal) next to a baseline measured in the same run, and prints one table. Benchmarks
are not tests: nothing here runs in CI and no test asserts a timing.

Modules:
- `run`       the command line, the plan and the table;
- `report`    the mode (samples, windows), a row of the table, number formatting, progress;
- `procs`     the temp dir, process bookkeeping (every process ended, also on Ctrl-C), timed
              child runs;
- `probes`    readings of a process or the machine: CPU time, wakeups, RSS, load;
- `fixtures`  configs, job commands, the daemon and the spec's loop as the figures run them;
- `pty_app`   the console on a pseudo-terminal, what it drew and when;
- `quota`     CPU-quota cgroups (a Pi's quarter core), made and removed by the bench;
- `trace`     writes, fsyncs and renames by file, from strace;
- `spec_loop` the spec's `batch_runner.py` scheduler loop (`schedule` + `run_pending()` +
              `sleep(1)`), the baseline for lateness, drift and idle CPU;
- `timing`    lateness of at-time jobs, interval drift, the 200-job burst;
- `idle`      idle CPU, wakeups and RSS of the daemon;
- `cli`       `list` wall time, history queries, a job writing a lot of output;
- `console`   the Textual console (measured only when `insect_console.app` imports);
- `pi`        console start and idle, daemon idle and `list` in a quarter-core CPU quota;
- `scale`     4, 100 and 1,000 jobs: daemon, `list`, console, reload;
- `writes`    bytes, write calls and fsyncs by file: per run, per idle hour, per `list`;
- `attached`  a console attached to a daemon whose answers are delayed: frame gaps, key to action.
"""
