"""Numbers a user gives, past any sane size: each is refused in one line naming the field and its
upper bound, never taken to break the engine later (epoll's INT_MAX ms, date overflow).

README promise: "A user mistake (unknown job, bad time, broken config) gives one line on stderr
and exit 2; nothing is written" (see README "Limits" for the bounds).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from insect_console import retention

from .kit import LOG_REL, Daemon, assert_one_line_error, cli, fast, job, note, wait_for, write_config

DAY = 86400

SETTINGS_TOO_BIG = {
    "default_timeout": (7 * DAY + 1, "604800"),
    "kill_grace": (3601, "3600"),
    "shutdown_grace": (DAY + 1, "86400"),
    "max_parallel": (65, "64"),
    "failure_threshold": (1001, "1000"),
    "output_tail_bytes": (1024 * 1024 + 1, "1048576"),
    "history_keep_days": (10**9, "36500"),
    "output_keep_days": (36501, "36500"),
    "output_max_mb": (1024 * 1024 + 1, "1048576"),
    "output_max_run_mb": (1024 * 1024 + 1, "1048576"),
}


@pytest.mark.parametrize("key", list(SETTINGS_TOO_BIG))
def test_a_setting_past_its_bound_is_refused_in_one_line(tmp_path: Path, key: str):
    value, cap = SETTINGS_TOO_BIG[key]
    config = write_config(tmp_path, [job("tick", "true")], settings=fast(**{key: value}))
    before = config.read_bytes()
    note(faults_injected=1)
    for argv in (["list"], ["scheduler", "--no-ui"], ["add", "x", "true", "--type", "interval", "--time", "60"]):
        line = assert_one_line_error(cli(tmp_path, *argv, timeout=60), f"settings.{key}", cap)
        assert "batch_config.toml" in line
    assert config.read_bytes() == before
    # the bound itself is accepted
    write_config(tmp_path, [job("tick", "true")], settings=fast(**{key: int(cap)}))
    assert cli(tmp_path, "list", timeout=60).returncode == 0


@pytest.mark.parametrize("timeout", [7 * DAY + 1, 25 * DAY, 10**12])
def test_a_job_timeout_past_its_bound_is_refused_in_one_line(tmp_path: Path, timeout: int):
    """A timeout over ~24.8 days (epoll's INT_MAX milliseconds) once broke the run: no record,
    a stale running entry, the child unsupervised."""
    config = write_config(tmp_path, [job("tick", "true", timeout=timeout)], settings=fast())
    note(faults_injected=1)
    for argv in (["list"], ["run-job", "tick"], ["scheduler", "--no-ui"]):
        assert_one_line_error(cli(tmp_path, *argv, timeout=60), "timeout", "604800")
    write_config(tmp_path, [job("tick", "true")], settings=fast())
    for argv in (["add", "x", "true", "--type", "interval", "--time", "60", "--timeout", str(timeout)],
                 ["edit", "tick", "--timeout", str(timeout)],
                 ["add", "y", "true", "--type", "interval", "--time", "60", "--timeout", "30d"]):
        assert_one_line_error(cli(tmp_path, *argv, timeout=60), "timeout", "604800")
    assert "timeout" not in config.read_text()
    assert cli(tmp_path, "edit", "tick", "--timeout", str(7 * DAY), timeout=60).returncode == 0


@pytest.mark.parametrize("limit", ["1000001", "99999999999999999999999"])
def test_history_limit_past_its_bound_is_refused_in_one_line(tmp_path: Path, limit: str):
    write_config(tmp_path, [job("tick", "true")], settings=fast())
    assert_one_line_error(cli(tmp_path, "history", "--limit", limit, timeout=60), "--limit", "1000000")
    assert cli(tmp_path, "history", "--limit", "1000000", timeout=60).returncode == 0


def test_an_interval_past_its_bound_is_refused_in_one_line(tmp_path: Path):
    write_config(tmp_path, [job("tick", "true")], settings=fast())
    assert_one_line_error(cli(tmp_path, "add", "x", "true", "--type", "interval", "--time", "367d", timeout=60), "schedule_time", "366 days")


# -- 7. retention never stops at a setting it can't compute -------------------------------------------


def _output(log_dir: Path, day: dt.date, name: str, size: int) -> Path:
    path = log_dir / "output" / f"{day:%Y%m%d}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"o" * size)
    return path


def test_a_prune_that_fails_still_applies_the_size_cap_and_is_logged_once(tmp_path: Path, caplog):
    """README: "run output is capped at 1 GiB" (output_max_mb). A keep-days value meaning
    "forever" (as a Settings made without the validator can carry) once raised OverflowError in
    every prune, so old output was never removed and the size cap no longer applied."""
    log_dir = tmp_path / "logs"
    today = dt.date.today()
    old = [_output(log_dir, today - dt.timedelta(days=d), f"job-000000-{d:06d}.log", 600_000) for d in (3, 2, 1)]
    note(faults_injected=1)
    caplog.set_level(logging.INFO, logger="insect_console.retention")
    for _ in range(3):
        report = retention.prune(log_dir, today=today, history_keep_days=10**9, output_keep_days=10**9, output_max_bytes=1_000_000)
    assert [p.exists() for p in old] == [False, False, True]  # the oldest went first, until under the cap
    assert report.output_bytes_left == 600_000
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "history_keep_days" in errors[0].getMessage() or "history" in errors[0].getMessage()
    assert "Traceback" not in caplog.text
    caplog.clear()
    retention.prune(log_dir, today=today, history_keep_days=30, output_keep_days=30, output_max_bytes=1_000_000)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_daemon_refuses_keep_days_that_mean_forever(tmp_path: Path):
    """Through the daemon: the value is refused at start, in one line, instead of a daemon
    whose every prune failed (and whose output then grew past output_max_mb)."""
    write_config(tmp_path, [job("big", "head -c 700000 /dev/zero", "interval", "1", shell=True)],
                 settings=fast(output_keep_days=10**7, output_max_mb=1))
    note(faults_injected=1)
    done = cli(tmp_path, "scheduler", "--no-ui", timeout=60)
    assert_one_line_error(done, "settings.output_keep_days", "36500")
    assert not (tmp_path / LOG_REL).exists()


_LONG_WAIT_SCRIPT = r"""
import json
from insect_console.jobs import make_job
from insect_console.runner import JobRun
job = make_job({"name": "x", "command": "sleep 0.3", "schedule_type": "interval", "schedule_time": "60"})
outcome = JobRun(job, run_id="20250101T000000-abcdef", timeout=25 * 86400, kill_grace=1).execute()
print(json.dumps([outcome.status, outcome.exit_code]))
"""


def test_the_runner_waits_for_a_long_deadline_in_pieces(tmp_path: Path):
    """A run handed a deadline past epoll's INT_MAX ms (a Settings made without the validator)
    still runs and ends: the selector waits in pieces, never once for the whole timeout."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _LONG_WAIT_SCRIPT], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["success", 0]
