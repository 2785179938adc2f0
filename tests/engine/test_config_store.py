"""The config file (TOML, or the spec's JSON) and the state file beside it."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import threading
import tomllib

import pytest
import tomli_w

from forkserver import cli_forked
from helpers import CONFIG_REL, PY, assert_one_line_error, cli, job, read_state, write_config
from insect_console.config import DEFAULT_JOBS, ConfigStore, Settings, convert
from insect_console.errors import ConfigError, UserError, ValidationError
from insect_console.fileio import Outage
from insect_console.jobs import make_job

SPEC_JSON = textwrap.dedent(
    """\
    {
      "jobs": [
        {
          "name": "hourly_detection",
          "command": "python main.py --mode single",
          "schedule_type": "interval",
          "schedule_time": "3600",
          "enabled": true,
          "last_run": "2025-07-29T01:00:00",
          "last_status": "error",
          "error_count": 2
        },
        {
          "name": "daily_analysis",
          "command": "python main.py --mode analysis",
          "schedule_type": "daily",
          "schedule_time": "02:00",
          "enabled": true,
          "last_run": null,
          "last_status": null,
          "error_count": 0
        }
      ]
    }
    """
)


def store_for(tmp_path, rel=CONFIG_REL):
    return ConfigStore(rel, base_dir=tmp_path)


def new_job(name, **changes):
    return make_job({**job(name, "true", "interval", "60"), **changes})


# -- defaults ---------------------------------------------------------------------------------------

def test_first_load_creates_the_default_jobs(tmp_path):
    store = store_for(tmp_path)
    config = store.load()
    assert store.path == tmp_path / CONFIG_REL and store.path.exists()
    assert config.jobs == DEFAULT_JOBS
    by_name = {j.name: j for j in config.jobs}
    assert (by_name["hourly_detection"].schedule_type, by_name["hourly_detection"].schedule_time) == ("interval", "3600")
    assert by_name["hourly_detection"].command == "python main.py --mode single"
    assert (by_name["daily_analysis"].schedule_type, by_name["daily_analysis"].schedule_time) == ("daily", "02:00")
    assert by_name["daily_analysis"].command == "python main.py --mode analysis"
    assert (by_name["weekly_cleanup"].schedule_type, by_name["weekly_cleanup"].schedule_time) == ("weekly", "sunday")
    assert (by_name["daily_backup"].schedule_time, by_name["daily_backup"].enabled) == ("03:00", False)
    text = store.path.read_text()
    assert text.startswith("#")                 # a commented header for the person who edits it
    assert tomllib.loads(text)["jobs"][0]["name"] == "hourly_detection"
    assert store.load() == config               # a second load reads the same file


def test_load_without_create_refuses_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        store_for(tmp_path).load(create=False)
    assert "no such config file" in str(info.value)
    assert not (tmp_path / CONFIG_REL).exists()


# -- reading TOML -------------------------------------------------------------------------------------

def test_hand_written_toml_with_comments_and_settings(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / CONFIG_REL).write_text(textwrap.dedent(
        """\
        # my station
        [settings]
        default_timeout = 600   # ten minutes
        notify_command = "/usr/local/bin/alert"

        [[jobs]]
        name = "detect"
        command = "python main.py --mode single"
        schedule_type = "interval"
        schedule_time = "15m"

        [[jobs]]
        name = "sync"
        command = "rsync -a data/ backup/ | tee -a sync.log"
        shell = true
        schedule_type = "weekly"
        schedule_time = "Sun 03:00"
        timeout = 120
        cwd = "work"
        env = { RSYNC_RSH = "ssh -p 2222" }
        enabled = false
        """
    ))
    config = store_for(tmp_path).load()
    assert config.settings == Settings(default_timeout=600, notify_command="/usr/local/bin/alert")
    detect, sync = config.jobs
    assert (detect.name, detect.schedule_time, detect.enabled, detect.shell) == ("detect", "15m", True, False)
    assert (sync.schedule_time, sync.timeout, sync.cwd, dict(sync.env), sync.enabled, sync.shell) == (
        "sunday 03:00", 120, "work", {"RSYNC_RSH": "ssh -p 2222"}, False, True)


def test_render_and_parse_round_trip(tmp_path):
    store = store_for(tmp_path)
    config = store.load()
    config = config.with_job(new_job("full", timeout=90, shell=True, cwd="w d", env={"K": "v \"q\""}, enabled=False))
    config = config.__class__(settings=Settings(kill_grace=0, notify_command="x 'y z'"), jobs=config.jobs)
    assert store.parse(store.render(config)) == config


BROKEN = [
    ("[[jobs]]\nname = \"a\"\ncommand = \"true\nschedule_type = \"daily\"\n", "line 3"),      # unterminated string
    ("[[jobs]]\nname = \"a\"\n\nthis is not toml\n", "line 4"),
    ("[settings\n", "line 1"),
]


@pytest.mark.parametrize("text, where", BROKEN)
def test_broken_toml_is_one_line_naming_file_and_line_and_is_never_rewritten(tmp_path, text, where):
    path = tmp_path / CONFIG_REL
    path.parent.mkdir()
    path.write_text(text)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    store = store_for(tmp_path)
    with pytest.raises(ConfigError) as info:
        store.load()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{CONFIG_REL}: ") or message.startswith(f"{tmp_path / CONFIG_REL}: ")
    assert where in message
    for change in (lambda: store.add_job(new_job("x")), lambda: store.remove_job("a"), lambda: store.set_enabled("a", False)):
        with pytest.raises(ConfigError):
            change()
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime


def test_an_invalid_job_names_its_line_and_field(tmp_path):
    path = tmp_path / CONFIG_REL
    path.parent.mkdir()
    path.write_text('[[jobs]]\nname = "good"\ncommand = "true"\nschedule_type = "interval"\nschedule_time = "3600"\n\n'
                    '[[jobs]]\nname = "bad"\ncommand = "true"\nschedule_type = "daily"\nschedule_time = "25:00"\n')
    with pytest.raises(ConfigError) as info:
        store_for(tmp_path).load()
    message = str(info.value)
    assert "line 8" in message           # the `name = "bad"` line (5 lines per job and a blank line)
    assert "job #2 (bad)" in message
    assert "schedule_time" in message and "25:00" in message


@pytest.mark.parametrize(
    "text, needle",
    [
        (tomli_w.dumps({"jobs": [job("twice", "true"), job("twice", "false")]}), "more than one job"),
        ("colour = \"red\"\n", "unknown top-level key 'colour'"),
        ("settings = 5\n", "settings must be a table"),
        ("jobs = 5\n", "jobs must be a list"),
        ("jobs = [5]\n", "must be a table"),
        ("[settings]\nmax_parallel = 0\n", "settings.max_parallel"),
        ("[[jobs]]\nname = \"x\"\nschedule_type = \"daily\"\nschedule_time = \"02:00\"\n", "command"),
    ],
)
def test_invalid_configs(tmp_path, text, needle):
    path = tmp_path / CONFIG_REL
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        store_for(tmp_path).load()
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_a_config_that_is_not_utf8(tmp_path):
    path = tmp_path / CONFIG_REL
    path.parent.mkdir()
    path.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        store_for(tmp_path).load()
    assert "UTF-8" in str(info.value)


def test_a_config_others_can_write_is_refused(tmp_path):
    path = write_config(tmp_path, [job("a", "true")])
    path.chmod(0o666)
    with pytest.raises(ConfigError) as info:
        store_for(tmp_path).load()
    assert "chmod 600" in str(info.value)


# -- changes ----------------------------------------------------------------------------------------------

def test_changes_keep_order_and_refuse_duplicates_and_unknown_names(tmp_path):
    write_config(tmp_path, [job("a", "true"), job("b", "true"), job("c", "true")])
    store = store_for(tmp_path)
    store.replace_job("b", new_job("b2", schedule_time="120"))
    assert store.load().names() == ["a", "b2", "c"]
    store.set_enabled("a", False)
    assert store.load().job("a").enabled is False
    store.remove_job("c")
    assert store.load().names() == ["a", "b2"]
    before = store.path.read_bytes()
    with pytest.raises(ValidationError):
        store.add_job(new_job("a"))
    with pytest.raises(ValidationError):
        store.replace_job("a", new_job("b2"))
    with pytest.raises(UserError):
        store.remove_job("nope")
    assert store.path.read_bytes() == before


def test_writes_are_private_and_atomic(tmp_path):
    store = store_for(tmp_path)
    store.add_job(new_job("x"))
    assert store.path.stat().st_mode & 0o777 == 0o600
    leftovers = [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_twelve_processes_adding_at_once_all_survive(tmp_path):
    """Twelve CLI `add`s released at the same instant: every job is in the file afterwards."""
    write_config(tmp_path, [job("existing", "true")])
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""\
        import os, sys, time
        from insect_console.cli import main
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        sys.exit(main(["-c", {CONFIG_REL!r}, "add", sys.argv[1], "echo " + sys.argv[1], "--type", "interval", "--time", "60"]))
        """
    )
    procs = [subprocess.Popen([PY, "-c", script, f"job{i:02d}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(12)]
    try:
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 12, results
    names = store_for(tmp_path).load().names()
    assert names[0] == "existing"
    assert sorted(names[1:]) == [f"job{i:02d}" for i in range(12)]


def test_twelve_processes_adding_to_a_config_that_does_not_exist_yet(tmp_path):
    """Twelve processes forked from one warm interpreter, released together by closing a pipe."""
    script = textwrap.dedent(
        f"""\
        import json, os, sys
        from insect_console.cli import main
        gate_r, gate_w = os.pipe()
        pids = []
        for i in range(12):
            pid = os.fork()
            if pid == 0:
                os.close(gate_w)
                os.read(gate_r, 1)  # blocks until the parent closes its end
                code = main(["-c", {CONFIG_REL!r}, "add", f"new{{i:02d}}", "true", "--type", "daily", "--time", "04:00"])
                sys.stdout.flush()
                os._exit(code)
            pids.append(pid)
        os.close(gate_w)
        print(json.dumps([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]))
        """
    )
    done = subprocess.run([PY, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [0] * 12, done.stderr
    names = store_for(tmp_path).load().names()
    assert names[:4] == [j.name for j in DEFAULT_JOBS]
    assert sorted(names[4:]) == [f"new{i:02d}" for i in range(12)]


# -- run state lives beside the config, not in it -------------------------------------------------------------

def test_runs_never_rewrite_the_config(tmp_path, engines):
    cfg = write_config(tmp_path, [job("a", "true"), job("b", "false")])
    before = cfg.read_bytes()
    mtime = cfg.stat().st_mtime_ns
    engine = engines(cfg, base_dir=tmp_path)
    engine.execute(engine.config.job("a"))
    engine.execute(engine.config.job("b"))
    assert cfg.read_bytes() == before and cfg.stat().st_mtime_ns == mtime
    state = read_state(cfg)
    assert state["jobs"]["a"]["last_status"] == "success"
    assert state["jobs"]["b"]["last_status"] == "error" and state["jobs"]["b"]["error_count"] == 1
    assert state["running"] == {}


def test_a_corrupt_state_file_is_kept_aside_and_the_engine_starts_afresh(tmp_path, engines):
    cfg = write_config(tmp_path, [job("a", "true")])
    state_path = cfg.with_name("batch_config.state.json")
    state_path.write_text("{ not json")
    state_path.chmod(0o600)
    engine = engines(cfg, base_dir=tmp_path)
    record = engine.execute(engine.config.job("a"))
    assert record["status"] == "success"
    aside = list(cfg.parent.glob("batch_config.state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{ not json"
    assert read_state(cfg)["jobs"]["a"]["last_status"] == "success"


# -- the spec's JSON format -------------------------------------------------------------------------------------

def test_spec_json_config_is_read(tmp_path):
    path = tmp_path / "config" / "batch_config.json"
    path.parent.mkdir()
    path.write_text(SPEC_JSON)
    store = store_for(tmp_path, "config/batch_config.json")
    config = store.load()
    assert config.names() == ["hourly_detection", "daily_analysis"]
    assert store.legacy_state() == {
        "hourly_detection": {"last_run": "2025-07-29T01:00:00", "last_status": "error", "error_count": 2},
        "daily_analysis": {"error_count": 0},
    }


def test_spec_json_config_is_written_as_json_with_its_run_state_fields(tmp_path):
    path = tmp_path / "config" / "batch_config.json"
    path.parent.mkdir()
    path.write_text(SPEC_JSON)
    store = store_for(tmp_path, "config/batch_config.json")
    store.add_job(new_job("added"))
    data = json.loads(path.read_text())
    assert [j["name"] for j in data["jobs"]] == ["hourly_detection", "daily_analysis", "added"]
    for entry in data["jobs"]:
        assert {"last_run", "last_status", "error_count"} <= set(entry)
    first = data["jobs"][0]
    assert (first["last_run"], first["last_status"], first["error_count"]) == ("2025-07-29T01:00:00", "error", 2)
    assert (data["jobs"][2]["last_run"], data["jobs"][2]["error_count"]) == (None, 0)
    assert not path.with_suffix(".toml").exists()


def test_convert_writes_toml_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "old.json"
    src.write_text(SPEC_JSON)
    source = ConfigStore(src, base_dir=tmp_path)
    target = ConfigStore(tmp_path / "new.toml", base_dir=tmp_path)
    config = convert(source, target)
    assert target.load() == config
    assert tomllib.loads(target.path.read_text())["jobs"][1]["schedule_time"] == "02:00"
    before = target.path.read_bytes()
    with pytest.raises(UserError):
        convert(source, target)
    assert target.path.read_bytes() == before


def test_files_made_by_a_run_are_private(tmp_path):
    write_config(tmp_path, [job("a", "echo a")])
    assert cli(tmp_path, "add", "b", "true", "--type", "daily", "--time", "04:00").returncode == 0
    assert cli(tmp_path, "run-job", "a").returncode == 0
    cfg = tmp_path / CONFIG_REL
    record = json.loads(next((tmp_path / "logs" / "batch").glob("batch_*.jsonl")).read_text())
    modes = {
        "config": cfg.stat().st_mode & 0o777,
        "state": cfg.with_name("batch_config.state.json").stat().st_mode & 0o777,
        "runtime dir": cfg.with_name(".batch_config.run").stat().st_mode & 0o777,
        "history": next((tmp_path / "logs" / "batch").glob("batch_*.jsonl")).stat().st_mode & 0o777,
        "log dir": (tmp_path / "logs" / "batch").stat().st_mode & 0o777,
        "output": os.stat(record["output_file"]).st_mode & 0o777,
    }
    assert modes == {"config": 0o600, "state": 0o600, "runtime dir": 0o700, "history": 0o600, "log dir": 0o700, "output": 0o600}


def test_a_state_file_others_can_write_is_refused(tmp_path):
    cfg = write_config(tmp_path, [job("a", "true")])
    state = cfg.with_name("batch_config.state.json")
    state.write_text('{"version": 1, "jobs": {}, "running": {}}')
    state.chmod(0o666)
    assert_one_line_error(cli_forked(tmp_path, "list"), "chmod 600")
    assert state.read_text() == '{"version": 1, "jobs": {}, "running": {}}'


def test_an_outage_is_reported_once_when_it_starts_and_once_when_it_ends_across_threads():
    outage = Outage()
    start = threading.Barrier(8)
    firsts: list[bool] = []

    def writer(note) -> None:
        start.wait()
        for _ in range(200):
            firsts.append(note())

    for note in (outage.failed, outage.worked):
        firsts.clear()
        threads = [threading.Thread(target=writer, args=(note,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert firsts.count(True) == 1, note.__name__  # 1,600 calls, one of them the first
