"""insect-console's benchmark suite: `python -m bench [--quick]` (or `python bench/run.py`).

Every figure runs insect-console for real (the headless daemon, the CLI, the console under a
pseudo-terminal) next to a baseline measured in the same run, and prints one table. Benchmarks
are not tests: nothing here runs in CI and no test asserts a timing.

Modules:
- `run`       the command line, the plan and the table;
- `common`    temp dirs, process bookkeeping (every process ended, also on Ctrl-C), configs,
              CPU/wakeup/RSS sampling, a pseudo-terminal driver for the console;
- `spec_loop` the spec's `batch_runner.py` scheduler loop (`schedule` + `run_pending()` +
              `sleep(1)`), the baseline for lateness, drift and idle CPU;
- `timing`    lateness of at-time jobs, interval drift, the 200-job burst;
- `idle`      idle CPU, wakeups and RSS of the daemon;
- `cli`       `list` wall time, history queries, a job writing a lot of output;
- `console`   the Textual console (measured only when `insect_console.app` imports).
"""
