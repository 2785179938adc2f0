"""The job validator: every accepted form and every refused one, and what a refusal says."""

from __future__ import annotations

import pytest

from helpers import job
from insect_console.config import Settings
from insect_console.errors import ValidationError
from insect_console.jobs import (
    Job,
    format_duration,
    make_job,
    normalize_schedule,
    parse_schedule,
    validate_command,
    validate_name,
    validate_timeout,
)


def job_data(**changes):
    return {**job("job", "true", "interval", "60"), **changes}


# -- schedules -------------------------------------------------------------------------------

GOOD_SCHEDULES = [
    # (type, time as written, stored form, parsed (kind, seconds, at, weekday))
    ("interval", "3600", "3600", ("interval", 3600, None, None)),
    ("interval", 3600, "3600", ("interval", 3600, None, None)),
    ("interval", " 60 ", "60", ("interval", 60, None, None)),
    ("interval", "1", "1", ("interval", 1, None, None)),
    ("interval", "90s", "90s", ("interval", 90, None, None)),
    ("interval", "15m", "15m", ("interval", 900, None, None)),
    ("interval", "1h", "1h", ("interval", 3600, None, None)),
    ("interval", "2H", "2H", ("interval", 7200, None, None)),
    ("interval", "1d", "1d", ("interval", 86400, None, None)),
    ("INTERVAL", "60", "60", ("interval", 60, None, None)),
    ("daily", "02:00", "02:00", ("daily", None, "02:00:00", None)),
    ("daily", "2:00", "02:00", ("daily", None, "02:00:00", None)),
    ("daily", "00:00", "00:00", ("daily", None, "00:00:00", None)),
    ("daily", "23:59", "23:59", ("daily", None, "23:59:00", None)),
    ("daily", "14:30:15", "14:30:15", ("daily", None, "14:30:15", None)),
    ("daily", " 10:30 ", "10:30", ("daily", None, "10:30:00", None)),
    ("weekly", "sunday", "sunday", ("weekly", None, "00:00:00", "sunday")),
    ("weekly", "SUNDAY", "sunday", ("weekly", None, "00:00:00", "sunday")),
    ("weekly", "Sun", "sunday", ("weekly", None, "00:00:00", "sunday")),
    ("weekly", "sun 03:00", "sunday 03:00", ("weekly", None, "03:00:00", "sunday")),
    ("weekly", "mon 3:05", "monday 03:05", ("weekly", None, "03:05:00", "monday")),
    ("weekly", "friday 23:59:59", "friday 23:59:59", ("weekly", None, "23:59:59", "friday")),
    ("weekly", "wed", "wednesday", ("weekly", None, "00:00:00", "wednesday")),
]


@pytest.mark.parametrize("kind, text, stored, parsed", GOOD_SCHEDULES, ids=[f"{k}-{t!r}" for k, t, _, _ in GOOD_SCHEDULES])
def test_good_schedule_forms(kind, text, stored, parsed):
    assert normalize_schedule(kind, text) == (parsed[0], stored)
    when = parse_schedule(kind, text if isinstance(text, str) else str(text))
    assert (when.kind, when.seconds, when.at, when.weekday) == parsed
    job = make_job(job_data(schedule_type=kind, schedule_time=text))
    assert (job.schedule_type, job.schedule_time) == (parsed[0], stored)


BAD_SCHEDULES = [
    # (type, time, field named in the error, a word of the accepted forms in the message)
    ("hourly", "60", "schedule_type", "interval, daily, weekly"),
    ("", "60", "schedule_type", "interval"),
    (None, "60", "schedule_type", "interval"),
    (3, "60", "schedule_type", "interval"),
    ("interval", "0", "schedule_time", "at least 1 second"),
    ("interval", "0s", "schedule_time", "at least 1 second"),
    ("interval", "-5", "schedule_time", "3600"),
    ("interval", "1.5", "schedule_time", "3600"),
    ("interval", "abc", "schedule_time", "3600"),
    ("interval", "1w", "schedule_time", "3600"),
    ("interval", "10 minutes", "schedule_time", "3600"),
    ("interval", "h", "schedule_time", "3600"),
    ("interval", "", "schedule_time", "3600"),
    ("interval", "   ", "schedule_time", "3600"),
    ("interval", None, "schedule_time", "3600"),
    ("interval", True, "schedule_time", "3600"),
    ("daily", "24:00", "schedule_time", "HH:MM"),
    ("daily", "12:60", "schedule_time", "HH:MM"),
    ("daily", "12:00:60", "schedule_time", "HH:MM"),
    ("daily", "1230", "schedule_time", "HH:MM"),
    ("daily", "noon", "schedule_time", "HH:MM"),
    ("daily", "12:5", "schedule_time", "HH:MM"),
    ("daily", "-1:00", "schedule_time", "HH:MM"),
    ("daily", "12:00 pm", "schedule_time", "HH:MM"),
    ("daily", "", "schedule_time", "HH:MM"),
    ("daily", 200, "schedule_time", "HH:MM"),
    ("weekly", "funday", "schedule_time", "sunday"),
    ("weekly", "sundays", "schedule_time", "sunday"),
    ("weekly", "7", "schedule_time", "sunday"),
    ("weekly", "sunday 25:00", "schedule_time", "sunday"),
    ("weekly", "sun 03", "schedule_time", "sunday"),
    ("weekly", "sunday at 3", "schedule_time", "sunday"),
    ("weekly", "", "schedule_time", "sunday"),
]


@pytest.mark.parametrize("kind, text, field, hint", BAD_SCHEDULES, ids=[f"{k}-{t!r}" for k, t, _, _ in BAD_SCHEDULES])
def test_bad_schedule_forms_are_refused_naming_field_and_forms(kind, text, field, hint):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(schedule_type=kind, schedule_time=text))
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"{field}: ")
    assert hint in message
    assert "\n" not in message


# -- names, commands, timeouts ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "job_1", "a.b-c", "9lives", "_x", "x" * 64, "hourly_detection"])
def test_good_names(name):
    assert validate_name(name) == name
    assert make_job(job_data(name=name)).name == name


@pytest.mark.parametrize("name", ["", ".hidden", "-dash", "a b", "a/b", "x" * 65, "ジョブ", "a\nb", None, 5])
def test_bad_names(name):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(name=name))
    assert info.value.field == "name"


GOOD_COMMANDS = [
    "true",
    "python main.py --mode single",
    "echo 'a|b'",
    'echo "a > b"',
    "echo a\\|b",
    "/usr/bin/env LANG=C date",
    "echo '$HOME'",
    "printf '%s\\n' x",
]


@pytest.mark.parametrize("command", GOOD_COMMANDS)
def test_good_commands_without_shell(command):
    assert validate_command(command, shell=False) == command
    assert make_job(job_data(command=command)).command == command


SHELL_SYNTAX = ["ls | wc -l", "echo a > f", "a && b", "a; b", "sleep 1 &", "cat < f", "echo $HOME", "echo $(date)",
                'echo "$HOME"', "echo `date`", "ls *.txt", "ls file?", "~/bin/x", "(cd /tmp)"]


@pytest.mark.parametrize("command", SHELL_SYNTAX)
def test_shell_syntax_needs_shell_and_says_so(command):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(command=command))
    assert info.value.field == "command"
    assert "--shell" in str(info.value)
    # with shell = true the same text is accepted as is
    assert make_job(job_data(command=command, shell=True)).command == command


@pytest.mark.parametrize("command", ["ls data[0-9].csv", "echo a\necho b", "python main.py  # hourly", "LANG=C python main.py"],
                         ids=["bracket-glob", "newline", "comment", "assignment"])
def test_more_shell_syntax_needs_shell(command):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(command=command))
    assert "--shell" in str(info.value)


@pytest.mark.parametrize("command, shell", [("", False), ("   ", False), ("", True), ("echo 'unterminated", False),
                                            ("echo a\0b", False), ("echo a\0b", True), (None, False), (["ls"], False)])
def test_bad_commands(command, shell):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(command=command, shell=shell))
    assert info.value.field == "command"


@pytest.mark.parametrize("given, expected", [(None, None), ("", None), (30, 30), ("30", 30), (" 30 ", 30), ("15m", 900), ("2h", 7200), ("90s", 90)])
def test_good_timeouts(given, expected):
    assert validate_timeout(given) == expected
    assert make_job(job_data(timeout=given)).timeout == expected


@pytest.mark.parametrize("given", [0, -1, "0", "abc", True, 1.5, "1.5", [30]])
def test_bad_timeouts(given):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(timeout=given))
    assert info.value.field == "timeout"


# -- other job fields ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "changes, field",
    [
        ({"colour": "red"}, "colour"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"shell": "true"}, "shell"),
        ({"cwd": 5}, "cwd"),
        ({"env": {"A": 1}}, "env"),
        ({"env": {"A=B": "x"}}, "env"),
        ({"env": {"": "x"}}, "env"),
        ({"env": ["A"]}, "env"),
        ({"env": {"A": "x\0y"}}, "env"),
    ],
)
def test_bad_job_fields(changes, field):
    with pytest.raises(ValidationError) as info:
        make_job(job_data(**changes))
    assert info.value.field == field


def test_spec_run_state_fields_are_accepted_and_not_part_of_the_definition():
    job = make_job(job_data(last_run="2025-07-29T02:00:00", last_status="success", error_count=2))
    assert "last_run" not in job.to_dict()


def test_full_job_round_trips_through_its_config_form():
    job = make_job(job_data(name="full", command="echo hi", schedule_type="weekly", schedule_time="sat 04:30",
                            enabled=False, timeout="5m", shell=True, cwd="work", env={"A": "1", "B": "two"}))
    assert job == Job("full", "echo hi", "weekly", "saturday 04:30", False, 300, True, "work", {"A": "1", "B": "two"})
    assert make_job(job.to_dict()) == job
    minimal = make_job(job_data())
    assert minimal.to_dict() == {"name": "job", "command": "true", "schedule_type": "interval", "schedule_time": "60", "enabled": True}


def test_argv_of_plain_and_shell_jobs():
    assert make_job(job_data(command="python 'my script.py' --x \"a b\"")).argv() == ["python", "my script.py", "--x", "a b"]
    assert make_job(job_data(command="a | b", shell=True)).argv() == ["/bin/sh", "-c", "a | b"]


@pytest.mark.parametrize(
    "kind, text, words",
    [("interval", "3600", "every 1h"), ("interval", "5400", "every 1h30m"), ("interval", "90", "every 1m30s"),
     ("daily", "02:00", "daily 02:00"), ("daily", "02:00:30", "daily 02:00:30"), ("weekly", "sunday", "Sun 00:00"),
     ("weekly", "sat 04:30", "Sat 04:30")],
)
def test_describe(kind, text, words):
    assert parse_schedule(kind, text).describe() == words


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (86400, "1d"), (90061, "1d1h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# -- settings --------------------------------------------------------------------------------------

def test_settings_defaults_follow_the_spec():
    s = Settings()
    assert s.default_timeout == 1800  # the spec's 30 minutes
    assert s.failure_threshold == 3
    assert s.log_dir == "logs/batch"


@pytest.mark.parametrize(
    "data",
    [{}, {"kill_grace": 0}, {"default_timeout": 5, "max_parallel": 1}, {"notify_command": "notify-send x"}, {"log_dir": "/var/log/x"}],
)
def test_good_settings(data):
    s = Settings.from_dict(data)
    for key, value in data.items():
        assert getattr(s, key) == value


@pytest.mark.parametrize(
    "data, key",
    [({"max_parallel": 0}, "max_parallel"), ({"default_timeout": True}, "default_timeout"), ({"default_timeout": "10"}, "default_timeout"),
     ({"kill_grace": -1}, "kill_grace"), ({"failure_threshold": 0}, "failure_threshold"), ({"notify_command": 5}, "notify_command"),
     ({"log_dir": " "}, "log_dir"), ({"nope": 1}, "nope"), ({"output_tail_bytes": 1.5}, "output_tail_bytes")],
)
def test_bad_settings(data, key):
    with pytest.raises(ValidationError) as info:
        Settings.from_dict(data)
    assert info.value.field == f"settings.{key}"
