"""Numbers a user gives, past any sane size: each is refused in one line naming the field and its
upper bound, never taken to break the engine later (epoll's INT_MAX ms, date overflow).

README promise: "A user mistake (unknown job, bad time, broken config) gives one line on stderr
and exit 2; nothing is written" (see README "Limits" for the bounds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .kit import assert_one_line_error, cli, fast, job, note, write_config

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
