"""cron lines and the systemd unit: exact schedules or a clear refusal, and paths quoted safely."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from forkserver import cli_forked
from helpers import PY, assert_one_line_error, cli, history_records, job, write_config
from insect_console.errors import UserError
from insect_console.integrations import cron_schedule
from insect_console.jobs import make_job


def schedule_of(kind, when):
    return cron_schedule(make_job(job("j", "true", kind, when)))


# -- cron schedules ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kind, when, fields",
    [
        ("interval", "3600", "0 * * * *"),
        ("daily", "02:00", "0 2 * * *"),
        ("weekly", "sunday", "0 0 * * 0"),
        ("weekly", "sun 03:30", "30 3 * * 0"),
        ("weekly", "monday 23:05", "5 23 * * 1"),
        ("weekly", "saturday", "0 0 * * 6"),
        ("daily", "14:30", "30 14 * * *"),
        ("interval", "60", "* * * * *"),
        ("interval", "15m", "*/15 * * * *"),
        ("interval", "1200", "*/20 * * * *"),
        ("interval", "2h", "0 */2 * * *"),
        ("interval", "12h", "0 */12 * * *"),
        ("interval", "1d", "0 0 * * *"),
    ],
)
def test_cron_fields(kind, when, fields):
    assert schedule_of(kind, when) == fields


@pytest.mark.parametrize(
    "kind, when, needle",
    [("interval", "90", "minutes"), ("interval", "7m", "evenly"), ("interval", "45", "minutes"), ("interval", "5h", "evenly"),
     ("interval", "90m", "evenly"), ("daily", "02:00:30", "seconds"), ("weekly", "sun 03:00:01", "seconds")],
)
def test_cron_refuses_what_it_cannot_express(kind, when, needle):
    with pytest.raises(UserError) as info:
        schedule_of(kind, when)
    assert needle in str(info.value)


@pytest.fixture
def cron_project(tmp_path):
    write_config(
        tmp_path,
        [
            job("hourly_detection", "echo detect", "interval", "3600"),
            job("daily_analysis", "echo analyse", "daily", "02:00"),
            job("weekly_cleanup", "echo clean", "weekly", "sunday"),
            job("ninety", "true", "interval", "90"),
            job("seven", "true", "interval", "7m"),
        ],
    )
    return tmp_path


@pytest.mark.parametrize("name, fields", [("hourly_detection", "0 * * * *"), ("daily_analysis", "0 2 * * *"), ("weekly_cleanup", "0 0 * * 0")])
def test_cron_command_lines(cron_project, name, fields):
    done = cli(cron_project, "cron", name)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert "\n" not in line
    assert line.startswith(fields + " ")
    argv = shlex.split(line[len(fields) + 1:])
    assert argv == ["cd", str(cron_project), "&&", PY, "-m", "insect_console", "-c", str(cron_project / "config/batch_config.toml"), "run-job", name]


@pytest.mark.parametrize("name, needle", [("ninety", "every 1m30s"), ("seven", "every 7m")])
def test_cron_refusals_exit_2_with_one_line(cron_project, name, needle):
    assert_one_line_error(cli_forked(cron_project, "cron", name), name, needle)


def test_cron_quotes_paths_with_spaces_quotes_and_percent(tmp_path):
    base = tmp_path / "obs station's \"data\" 100%"
    base.mkdir()
    write_config(base, [job("daily_analysis", "echo analysed", "daily", "02:00")], rel="my config/batch config.toml")
    python = tmp_path / "py thon's bin" / "python3"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\nexec {shlex.quote(PY)} \"$@\"\n")  # a python with an awkward path
    python.chmod(0o755)
    done = cli(base, "cron", "daily_analysis", "--python", str(python), config="my config/batch config.toml")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    fields, command = line[: len("0 2 * * *")], line[len("0 2 * * * "):]
    assert fields == "0 2 * * *"
    # cron turns an unescaped % into a newline: every % must be escaped
    assert "%" not in command.replace("\\%", "")
    crontab_command = command.replace("\\%", "%")  # what cron hands to /bin/sh
    argv = shlex.split(crontab_command)
    assert argv == ["cd", str(base), "&&", str(python), "-m", "insect_console", "-c", str(base / "my config/batch config.toml"),
                    "run-job", "daily_analysis"]
    # and /bin/sh really runs it, from any directory
    done = subprocess.run(["/bin/sh", "-c", crontab_command], cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "analysed\n"
    [record] = history_records(base / "logs" / "batch")
    assert (record["job_name"], record["status"]) == ("daily_analysis", "success")


def test_cron_default_python_is_this_one(cron_project):
    line = cli_forked(cron_project, "cron", "daily_analysis").stdout
    assert shlex.split(line.split(" ", 5)[5])[3] == sys.executable


# -- systemd -------------------------------------------------------------------------------------------

def parse_unit(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current[key] = value
    return sections


def test_systemd_unit(tmp_path):
    write_config(tmp_path, [job("a", "true")], settings={"shutdown_grace": 40, "kill_grace": 5})
    done = cli(tmp_path, "systemd", "--user", "observer")
    assert done.returncode == 0, done.stderr
    unit = parse_unit(done.stdout)
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["Type"] == "notify"                      # READY=1 once it schedules (see sdnotify.py)
    assert service["NotifyAccess"] == "main"                # the jobs it starts can't speak for it
    assert service["WatchdogSec"] == "60"                   # the default watchdog_sec
    assert service["User"] == "observer"
    assert service["WorkingDirectory"] == str(tmp_path)
    assert shlex.split(service["ExecStart"]) == [PY, "-m", "insect_console", "-c", str(tmp_path / "config/batch_config.toml"), "scheduler", "--no-ui"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) > 40 + 5          # longer than the shutdown grace plus the kill grace
    assert service["KillMode"] == "mixed"
    assert "PYTHONUNBUFFERED=1" in service.get("Environment", "")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]


def test_systemd_unit_default_user_is_the_caller(tmp_path):
    import getpass

    write_config(tmp_path, [job("a", "true")])
    unit = parse_unit(cli_forked(tmp_path, "systemd").stdout)
    assert unit["Service"]["User"] == getpass.getuser()


@pytest.mark.parametrize("seconds", [30, 0])
def test_systemd_unit_watchdog_sec_comes_from_the_settings(tmp_path, seconds):
    write_config(tmp_path, [job("a", "true")], settings={"watchdog_sec": seconds})
    service = parse_unit(cli_forked(tmp_path, "systemd").stdout)["Service"]
    assert (service["Type"], service["WatchdogSec"]) == ("notify", str(seconds))   # 0: systemd's "no watchdog"


def test_a_negative_watchdog_sec_is_refused(tmp_path):
    write_config(tmp_path, [job("a", "true")], settings={"watchdog_sec": -1})
    assert_one_line_error(cli_forked(tmp_path, "systemd"), "settings.watchdog_sec", "≥ 0")


def test_systemd_unit_quotes_awkward_paths(tmp_path):
    base = tmp_path / 'st "a" $HOME 50%'
    base.mkdir()
    write_config(base, [job("a", "true")], rel="c d/jobs.toml")
    done = cli(base, "systemd", config="c d/jobs.toml")
    assert done.returncode == 0, done.stderr
    service = parse_unit(done.stdout)["Service"]
    assert service["WorkingDirectory"] == str(base).replace("%", "%%")   # verbatim but for % specifiers
    exec_start = service["ExecStart"]
    # systemd's rules: "..." words, \" and \\ escapes, $$ for $, %% for %
    words = [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(exec_start)]
    assert words == [PY, "-m", "insect_console", "-c", str(base / "c d/jobs.toml"), "scheduler", "--no-ui"]
    assert "$HOME" not in exec_start.replace("$$HOME", "")                 # no variable expansion by systemd


def test_systemd_user_with_a_newline_is_refused(tmp_path):
    write_config(tmp_path, [job("a", "true")])
    assert_one_line_error(cli_forked(tmp_path, "systemd", "--user", "observer\nExecStartPre=/bin/touch /tmp/pwned"), "user")
