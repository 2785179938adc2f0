"""The `insect-console` command, run as a real subprocess: every command's happy path and its errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tomllib

import pytest

from forkserver import cli_forked
from helpers import (
    CONFIG_REL,
    assert_one_line_error,
    check_batch_result,
    cli,
    cli_process,
    history_records,
    is_alive,
    job,
    kill_processes,
    read_state,
    run_survivors,
    wait_file_cmd,
    wait_for,
    write_config,
)

DEFAULT_NAMES = ["hourly_detection", "daily_analysis", "weekly_cleanup", "daily_backup"]


def config_jobs(path):
    return tomllib.loads(path.read_text()).get("jobs", [])


@pytest.fixture
def abc(tmp_path):
    """A config with three jobs a, b, c."""
    return write_config(tmp_path, [job("a", "echo a"), job("b", "echo b", "daily", "02:00"), job("c", "echo c", "weekly", "sunday")])


# -- list ----------------------------------------------------------------------------------------

def test_list_on_a_fresh_directory_creates_the_default_config(tmp_path):
    done = cli(tmp_path, "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ON", "SCHEDULE"]
    assert [line.split()[0] for line in lines[1:]] == DEFAULT_NAMES
    assert "every 1h" in lines[1] and "daily 02:00" in lines[2] and "Sun 00:00" in lines[3]
    assert [j["name"] for j in config_jobs(tmp_path / CONFIG_REL)] == DEFAULT_NAMES


def test_list_json_is_the_spec_job_status(tmp_path):
    done = cli_forked(tmp_path, "list", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert [s["name"] for s in status] == DEFAULT_NAMES
    for s in status:
        assert set(s) >= {"name", "enabled", "schedule_type", "schedule_time", "last_run", "last_status", "error_count", "next_run"}
        assert (s["last_run"], s["last_status"], s["error_count"]) == (None, None, 0)
    backup = status[3]
    assert (backup["enabled"], backup["next_run"]) == (False, None)
    assert all(s["next_run"] for s in status[:3])


def test_list_shows_last_runs(tmp_path, abc):
    assert cli_forked(tmp_path, "run-job", "a").returncode == 0
    status = {s["name"]: s for s in json.loads(cli_forked(tmp_path, "list", "--json").stdout)}
    assert status["a"]["last_status"] == "success" and status["a"]["last_run"]
    assert status["b"]["last_status"] is None
    table = cli_forked(tmp_path, "list").stdout
    assert "success" in table.splitlines()[1]


def test_config_option_before_or_after_the_command(tmp_path):
    write_config(tmp_path, [job("only", "true")], rel="elsewhere/jobs.toml")
    for args in (("-c", "elsewhere/jobs.toml", "list"), ("list", "-c", "elsewhere/jobs.toml"), ("list", "--config", "elsewhere/jobs.toml")):
        done = cli_forked(tmp_path, *args, config=None)
        assert done.returncode == 0, done.stderr
        assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["only"]
    assert not (tmp_path / CONFIG_REL).exists()


def test_log_level_option(tmp_path, abc):
    assert cli_forked(tmp_path, "-l", "debug", "list").returncode == 0
    assert cli_forked(tmp_path, "list", "--log-level", "ERROR").returncode == 0
    assert_one_line_error(cli_forked(tmp_path, "-l", "loud", "list"), "LOUD", "--log-level")


def test_version_and_help(tmp_path):
    done = cli(tmp_path, "--version", config=None)
    assert done.returncode == 0 and done.stdout.startswith("insect-console ")
    done = cli(tmp_path, "--help", config=None)
    assert done.returncode == 0 and "run-job" in done.stdout
    assert not (tmp_path / "config").exists()


def test_unknown_command(tmp_path):
    assert_one_line_error(cli_forked(tmp_path, "frobnicate"), "frobnicate")


# -- add -------------------------------------------------------------------------------------------

def test_add_the_spec_example(tmp_path, abc):
    done = cli(tmp_path, "add", "backup_task", "python backup.py", "--type", "daily", "--time", "03:00")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "added backup_task: daily 03:00"
    jobs = config_jobs(abc)
    assert [j["name"] for j in jobs] == ["a", "b", "c", "backup_task"]
    assert jobs[-1] == {"name": "backup_task", "command": "python backup.py", "schedule_type": "daily", "schedule_time": "03:00", "enabled": True}


def test_add_with_every_option(tmp_path, abc):
    (tmp_path / "work").mkdir()
    done = cli_forked(tmp_path, "add", "piped", "echo hi | wc -c > count.txt", "--type", "weekly", "--time", "sat 4:05",
               "--timeout", "5m", "--shell", "--cwd", "work", "--disabled")
    assert done.returncode == 0, done.stderr
    job = config_jobs(abc)[-1]
    assert job == {"name": "piped", "command": "echo hi | wc -c > count.txt", "schedule_type": "weekly", "schedule_time": "saturday 04:05",
                   "enabled": False, "timeout": 300, "shell": True, "cwd": "work"}
    assert cli_forked(tmp_path, "run-job", "piped").returncode == 0  # a disabled job still runs on request
    assert (tmp_path / "work" / "count.txt").read_text().strip() == "3"


@pytest.mark.parametrize(
    "args, needles",
    [
        (("a", "true", "--type", "interval", "--time", "60"), ("already exists",)),
        (("x", "true", "--type", "daily", "--time", "25:00"), ("schedule_time", "25:00")),
        (("x", "true", "--type", "interval", "--time", "7 weeks"), ("schedule_time",)),
        (("x", "true", "--type", "weekly", "--time", "funday"), ("schedule_time", "funday")),
        (("x", "ls | wc", "--type", "interval", "--time", "60"), ("command", "--shell")),
        (("x", "echo 'open", "--type", "interval", "--time", "60"), ("command",)),
        (("x", "true", "--type", "hourly", "--time", "60"), ("hourly",)),
        (("x", "true", "--type", "interval"), ("--time",)),
        (("bad name", "true", "--type", "interval", "--time", "60"), ("name",)),
        (("x", "true", "--type", "interval", "--time", "60", "--timeout", "soon"), ("timeout",)),
        (("x", "", "--type", "interval", "--time", "60"), ("command",)),
    ],
    ids=["duplicate", "bad-daily", "bad-interval", "bad-weekday", "shell-syntax", "unbalanced-quote", "bad-type", "no-time",
         "bad-name", "bad-timeout", "empty-command"],
)
def test_add_errors(tmp_path, abc, args, needles):
    before = abc.read_bytes()
    assert_one_line_error(cli_forked(tmp_path, "add", *args), *needles)
    assert abc.read_bytes() == before


# -- remove, enable, disable ---------------------------------------------------------------------

def test_remove_enable_disable(tmp_path, abc):
    done = cli_forked(tmp_path, "disable", "b")
    assert (done.returncode, done.stdout.strip()) == (0, "disabled b")
    assert [j.get("enabled", True) for j in config_jobs(abc)] == [True, False, True]   # the others' lines are as written
    status = {s["name"]: s for s in json.loads(cli_forked(tmp_path, "list", "--json").stdout)}
    assert (status["b"]["enabled"], status["b"]["next_run"]) == (False, None)
    done = cli_forked(tmp_path, "enable", "b")
    assert (done.returncode, done.stdout.strip()) == (0, "enabled b")
    assert [j.get("enabled", True) for j in config_jobs(abc)] == [True, True, True]
    done = cli_forked(tmp_path, "remove", "a")
    assert (done.returncode, done.stdout.strip()) == (0, "removed a")
    assert [j["name"] for j in config_jobs(abc)] == ["b", "c"]


def test_enabling_an_enabled_job_is_fine_and_writes_nothing(tmp_path, abc):
    before = abc.read_bytes()
    done = cli_forked(tmp_path, "enable", "a")
    assert (done.returncode, done.stdout.strip()) == (0, "enabled a")
    assert abc.read_bytes() == before


# -- unknown job ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args",
    [("remove", "nope"), ("enable", "nope"), ("disable", "nope"), ("run-job", "nope"), ("run-job", "--local", "nope"), ("cron", "nope"),
     ("edit", "nope", "--time", "5m")],
    ids=lambda a: " ".join(a),
)
def test_unknown_job_is_one_line_exit_2_and_changes_nothing(tmp_path, abc, args):
    before = abc.read_bytes()
    mtime = abc.stat().st_mtime_ns
    line = assert_one_line_error(cli_forked(tmp_path, *args), "nope")
    assert line.startswith("insect-console: ")
    assert abc.read_bytes() == before and abc.stat().st_mtime_ns == mtime
    assert not (tmp_path / "logs").exists() or history_records(tmp_path / "logs" / "batch") == []


# -- a broken config -------------------------------------------------------------------------------

BROKEN_TOML = '[[jobs]]\nname = "a"\ncommand = "echo a\nschedule_type = "interval"\nschedule_time = "60"\n'


@pytest.mark.parametrize(
    "args",
    [("list",), ("list", "--json"), ("add", "x", "true", "--type", "interval", "--time", "60"), ("remove", "a"), ("enable", "a"),
     ("disable", "a"), ("edit", "a", "--time", "5m"), ("run-job", "a"), ("cron", "a"), ("history",), ("systemd",),
     ("scheduler", "--no-ui")],
    ids=lambda a: " ".join(a),
)
def test_broken_toml_is_one_line_with_file_and_line_and_never_rewritten(tmp_path, args):
    cfg = tmp_path / CONFIG_REL
    cfg.parent.mkdir()
    cfg.write_text(BROKEN_TOML)
    before = cfg.read_bytes()
    mtime = cfg.stat().st_mtime_ns
    assert_one_line_error(cli_forked(tmp_path, *args, timeout=30), CONFIG_REL, "line 3")
    assert cfg.read_bytes() == before
    assert cfg.stat().st_mtime_ns == mtime
    assert [p.name for p in cfg.parent.iterdir() if p.is_file()] == ["batch_config.toml"]


# hand-written [[jobs]] tables: line 8 is the `name = "late"` line
LATE_TOML = ('[[jobs]]\nname = "ok"\ncommand = "true"\nschedule_type = "interval"\nschedule_time = "3600"\n\n'
             '[[jobs]]\nname = "late"\ncommand = "true"\nschedule_type = "daily"\nschedule_time = "24:30"\n')


def test_invalid_job_in_config_is_one_line_with_line_and_field(tmp_path):
    cfg = tmp_path / CONFIG_REL
    cfg.parent.mkdir()
    cfg.write_text(LATE_TOML)
    before = cfg.read_bytes()
    assert_one_line_error(cli_forked(tmp_path, "list"), CONFIG_REL, "line 8", "late", "schedule_time")
    assert cfg.read_bytes() == before


def test_config_directory_missing_parent_for_explicit_config_is_created_with_defaults(tmp_path):
    done = cli_forked(tmp_path, "list", config="deep/er/jobs.toml")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "deep/er/jobs.toml").exists()


# -- the spec's JSON config ---------------------------------------------------------------------------

SPEC_JSON = {
    "jobs": [
        {"name": "hourly_detection", "command": "echo detect", "schedule_type": "interval", "schedule_time": "3600", "enabled": True,
         "last_run": "2025-07-29T01:00:00", "last_status": "error", "error_count": 2},
        {"name": "daily_analysis", "command": "echo analyse", "schedule_type": "daily", "schedule_time": "02:00", "enabled": True,
         "last_run": None, "last_status": None, "error_count": 0},
    ]
}
JSON_REL = "config/batch_config.json"


@pytest.fixture
def spec_json(tmp_path):
    path = tmp_path / JSON_REL
    path.parent.mkdir()
    path.write_text(json.dumps(SPEC_JSON, indent=2))
    return path


def test_json_config_list_shows_its_run_state(tmp_path, spec_json):
    done = cli_forked(tmp_path, "list", "--json", config=JSON_REL)
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)[0]
    assert (first["last_run"], first["last_status"], first["error_count"]) == ("2025-07-29T01:00:00", "error", 2)


def test_json_config_is_written_back_as_json_with_run_state(tmp_path, spec_json):
    assert cli(tmp_path, "run-job", "daily_analysis", config=JSON_REL).returncode == 0
    done = cli(tmp_path, "add", "extra", "echo extra", "--type", "interval", "--time", "15m", config=JSON_REL)
    assert done.returncode == 0, done.stderr
    assert cli(tmp_path, "disable", "extra", config=JSON_REL).returncode == 0
    data = json.loads(spec_json.read_text())  # still the spec's JSON format
    by_name = {j["name"]: j for j in data["jobs"]}
    assert list(by_name) == ["hourly_detection", "daily_analysis", "extra"]
    assert (by_name["hourly_detection"]["last_run"], by_name["hourly_detection"]["error_count"]) == ("2025-07-29T01:00:00", 2)
    assert by_name["daily_analysis"]["last_status"] == "success" and by_name["daily_analysis"]["last_run"]
    assert by_name["extra"]["enabled"] is False
    assert {"last_run", "last_status", "error_count"} <= set(by_name["extra"])
    assert not spec_json.with_suffix(".toml").exists()


def test_json_config_broken_is_one_line_with_line(tmp_path):
    path = tmp_path / JSON_REL
    path.parent.mkdir()
    path.write_text('{\n  "jobs": [\n    {"name": "a",}\n  ]\n}\n')
    before = path.read_bytes()
    assert_one_line_error(cli_forked(tmp_path, "add", "x", "true", "--type", "interval", "--time", "60", config=JSON_REL), JSON_REL, "line 3")
    assert path.read_bytes() == before


# -- convert ---------------------------------------------------------------------------------------------

def test_convert_json_to_toml_with_run_state(tmp_path, spec_json):
    done = cli(tmp_path, "convert", JSON_REL, config=None)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "config" / "batch_config.toml"
    assert "config/batch_config.toml" in done.stdout and "2 jobs" in done.stdout
    jobs = config_jobs(target)
    assert [(j["name"], j["schedule_type"], j["schedule_time"]) for j in jobs] == [
        ("hourly_detection", "interval", "3600"), ("daily_analysis", "daily", "02:00")]
    assert all("last_run" not in j for j in jobs)       # run state goes to the state file
    first = json.loads(cli(tmp_path, "list", "--json").stdout)[0]
    assert (first["last_run"], first["last_status"], first["error_count"]) == ("2025-07-29T01:00:00", "error", 2)
    assert json.loads(spec_json.read_text()) == SPEC_JSON  # the source is left as it was


def test_convert_to_a_named_target(tmp_path, spec_json):
    done = cli_forked(tmp_path, "convert", JSON_REL, "new/jobs.toml", config=None)
    assert done.returncode == 0, done.stderr
    assert [j["name"] for j in config_jobs(tmp_path / "new/jobs.toml")] == ["hourly_detection", "daily_analysis"]


@pytest.mark.parametrize(
    "args, needle",
    [((JSON_REL, "config/batch_config.toml"), "already exists"), (("config/batch_config.toml",), "json"),
     (("missing.json",), "missing.json"), ((JSON_REL, "out.json"), "toml")],
    ids=["target-exists", "source-not-json", "source-missing", "target-not-toml"],
)
def test_convert_errors(tmp_path, spec_json, args, needle):
    existing = write_config(tmp_path, [job("keep", "true")])
    before = existing.read_bytes()
    assert_one_line_error(cli_forked(tmp_path, "convert", *args, config=None), needle)
    assert existing.read_bytes() == before
    assert not (tmp_path / "out.json").exists()


# -- edit ---------------------------------------------------------------------------------------------

def test_edit_changes_a_schedule_in_place(tmp_path, abc):
    done = cli(tmp_path, "edit", "b", "--type", "weekly", "--time", "mon 4:30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("changed b: Mon 04:30")
    jobs = config_jobs(abc)
    assert [j["name"] for j in jobs] == ["a", "b", "c"]
    # only the changed keys are written: the job's other lines, and the other jobs, stay as they were
    assert jobs[1] == {"name": "b", "command": "echo b", "schedule_type": "weekly", "schedule_time": "monday 04:30"}
    assert jobs[0] == {"name": "a", "command": "echo a", "schedule_type": "interval", "schedule_time": "3600"}


def test_edit_time_only_keeps_the_type(tmp_path, abc):
    assert cli_forked(tmp_path, "edit", "b", "--time", "5:15").returncode == 0
    assert config_jobs(abc)[1]["schedule_time"] == "05:15"


def test_edit_command_timeout_shell_and_rename(tmp_path, abc):
    assert cli_forked(tmp_path, "edit", "a", "--command", "echo a | tr a b", "--shell", "--timeout", "30").returncode == 0
    job = config_jobs(abc)[0]
    assert (job["command"], job["shell"], job["timeout"]) == ("echo a | tr a b", True, 30)
    assert cli_forked(tmp_path, "run-job", "a").stdout == "b\n"
    assert cli_forked(tmp_path, "edit", "a", "--timeout", "default", "--command", "echo plain", "--no-shell").returncode == 0
    job = config_jobs(abc)[0]
    assert "timeout" not in job and "shell" not in job and job["command"] == "echo plain"
    done = cli_forked(tmp_path, "edit", "a", "--rename", "alpha")
    assert done.returncode == 0, done.stderr
    assert [j["name"] for j in config_jobs(abc)] == ["alpha", "b", "c"]


@pytest.mark.parametrize(
    "args, needles",
    [(("b", "--type", "interval"), ("--time",)), (("b", "--time", "99:00"), ("schedule_time",)),
     (("a", "--command", "a && b"), ("--shell",)), (("a", "--rename", "b"), ("already exists",)),
     (("a", "--rename", ".x"), ("name",))],
    ids=["type-without-time", "bad-time", "shell-syntax", "rename-clash", "bad-rename"],
)
def test_edit_errors_change_nothing(tmp_path, abc, args, needles):
    before = abc.read_bytes()
    assert_one_line_error(cli_forked(tmp_path, "edit", *args), *needles)
    assert abc.read_bytes() == before


# -- run-job -----------------------------------------------------------------------------------------

@pytest.fixture
def runnable(tmp_path):
    release = tmp_path / "release"
    return write_config(
        tmp_path,
        [
            job("ok", "echo all good"),
            job("three", "sh -c 'echo out; echo err >&2; exit 3'"),
            job("slow", "sleep 300", timeout=1),
            job("missing", "no-such-program-for-insect-tests"),
            job("held", wait_file_cmd(release, "released")),
        ],
        settings={"kill_grace": 1},
    )


def test_run_job_success_exit_0(tmp_path, runnable):
    done = cli(tmp_path, "run-job", "ok")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "all good\n"
    assert done.stderr.strip().startswith("ok: success")
    [record] = history_records(tmp_path / "logs" / "batch")
    check_batch_result(record)
    assert (record["job_name"], record["status"], record["output"], record["trigger"]) == ("ok", "success", "all good\n", "manual")


def test_run_job_failure_exit_1(tmp_path, runnable):
    done = cli_forked(tmp_path, "run-job", "three")
    assert done.returncode == 1
    assert done.stdout == "out\n"
    assert "err" in done.stderr and "exit status 3" in done.stderr
    assert "Traceback" not in done.stderr
    assert history_records(tmp_path / "logs" / "batch")[-1]["status"] == "error"


def test_run_job_missing_binary_exit_1(tmp_path, runnable):
    done = cli_forked(tmp_path, "run-job", "missing")
    assert done.returncode == 1
    assert "command not found: no-such-program-for-insect-tests" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_job_timeout_exit_124(tmp_path, runnable):
    done = cli(tmp_path, "run-job", "slow")
    assert done.returncode == 124
    assert "timed out after 1 s" in done.stderr
    record = history_records(tmp_path / "logs" / "batch")[-1]
    assert record["status"] == "timeout"
    assert run_survivors(record["run_id"]) == []


def test_run_job_exit_75_while_another_run_holds_the_job(tmp_path, runnable):
    with cli_process(tmp_path, "run-job", "held", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as first:
        wait_for(lambda: any(e.get("job_name") == "held" for e in read_state(runnable)["running"].values()),
                 what="the first run to be entered as running")
        second = cli(tmp_path, "run-job", "held")
        assert_one_line_error(second, "held", "already running", code=75)
        assert cli(tmp_path, "run-job", "--local", "held").returncode == 75
        (tmp_path / "release").touch()
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert out == "released\n"
    assert [r["status"] for r in history_records(tmp_path / "logs" / "batch")] == ["success"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_job_interrupted_ends_its_job_and_records_it(tmp_path, sig):
    cfg = write_config(tmp_path, [job("long", "sh -c 'echo started; sleep 300'")], settings={"kill_grace": 1})
    run_id = None
    try:
        with cli_process(tmp_path, "run-job", "long", stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            run_id, info = wait_for(lambda: next(((k, e) for k, e in read_state(cfg)["running"].items() if e.get("pid")), None),
                                    what="the run's pid in the state")
            os.kill(proc.pid, sig)
            proc.communicate(timeout=30)
            leftovers = run_survivors(run_id)
    finally:
        if run_id is not None:
            kill_processes(run_survivors(run_id))
    assert proc.returncode != 0
    assert leftovers == []
    assert not is_alive(info["pid"])
    assert read_state(cfg)["running"] == {}
    assert [r["status"] for r in history_records(tmp_path / "logs" / "batch")] == ["interrupted"]


def test_a_run_job_killed_with_sigkill_is_not_shown_running_forever(tmp_path):
    cfg = write_config(tmp_path, [job("long", "sleep 300"), job("quick", "true")])
    with cli_process(tmp_path, "run-job", "long", stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            run_id, entry = wait_for(lambda: next(((k, e) for k, e in read_state(cfg)["running"].items() if e.get("pid")), None),
                                     what="the run's pid in the state")
        finally:
            proc.kill()                               # the OOM killer takes run-job ...
            proc.communicate()
    os.kill(entry["pid"], signal.SIGKILL)             # ... and its job
    wait_for(lambda: not is_alive(entry["pid"]), what="the job to die")
    assert cli_forked(tmp_path, "run-job", "quick").returncode == 0
    row = next(line for line in cli_forked(tmp_path, "list").stdout.splitlines() if line.startswith("long "))
    assert "running" not in row.split()


@pytest.mark.parametrize("args", [("list",), ("add", "x", "true", "--type", "daily", "--time", "04:00")], ids=["list", "add"])
def test_a_config_path_that_cannot_be_created_is_one_line(tmp_path, args):
    (tmp_path / "afile").write_text("not a directory\n")
    assert_one_line_error(cli_forked(tmp_path, *args, config="afile/jobs.toml"), "afile")


def test_a_config_path_that_is_a_directory_is_one_line(tmp_path):
    (tmp_path / "config").mkdir()
    assert_one_line_error(cli_forked(tmp_path, "list", config="config"), "config", "directory")


def test_a_new_json_config_is_created_in_the_spec_format(tmp_path):
    done = cli_forked(tmp_path, "list", "--json", config="config/new.json")
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "config/new.json").read_text())
    assert [j["name"] for j in data["jobs"]] == DEFAULT_NAMES
    assert all({"last_run", "last_status", "error_count"} <= set(j) for j in data["jobs"])


def test_the_lazy_parser_knows_every_command():
    """`main` builds only the options of the command it runs; COMMANDS must name every one."""
    import argparse

    from insect_console.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)
    for name in COMMANDS:  # each command's own options are built when it is the one run
        only = next(a for a in build_parser(name)._actions if isinstance(a, argparse._SubParsersAction))
        assert set(only.choices) == {name}
