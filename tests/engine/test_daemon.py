"""The headless daemon (`scheduler --no-ui`) as a real subprocess: runs, live reloads, signals, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from forkserver import cli_forked
from helpers import (
    CONFIG_REL,
    PY,
    assert_one_line_error,
    check_batch_result,
    cli,
    cli_process,
    fast_settings,
    history_records,
    is_alive,
    job,
    read_state,
    run_survivors,
    wait_file_cmd,
    wait_for,
    write_config,
)


def records(tmp_path, job=None, status=None):
    out = history_records(tmp_path / "logs" / "batch")
    return [r for r in out if (job is None or r["job_name"] == job) and (status is None or r["status"] == status)]


def running_entry(cfg, job):
    """(run_id, entry) of `job`'s run in progress according to the state file, or None."""
    for run_id, entry in read_state(cfg)["running"].items():
        if entry.get("job_name") == job and entry.get("pid"):
            return run_id, entry
    return None


def test_daemon_runs_a_one_second_job_and_exits_0_on_sigterm(tmp_path, daemons):
    cfg = write_config(tmp_path, [job("tick", "echo tick", "interval", "1")], settings=fast_settings())
    config_before = cfg.read_bytes()
    d = daemons(tmp_path)
    d.started()
    wait_for(lambda: len(records(tmp_path, "tick", "success")) >= 2, what="two runs of the 1-second job")
    assert d.stop(signal.SIGTERM) == 0
    log = d.log
    assert "SIGTERM received" in log and "scheduler stopped" in log
    assert "Traceback" not in log
    done = records(tmp_path)
    assert len(done) >= 2
    for r in done:
        check_batch_result(r)
        assert (r["job_name"], r["output"], r["trigger"]) == ("tick", "tick\n", "schedule")
    state = read_state(cfg)
    assert state["running"] == {}
    assert state["jobs"]["tick"]["last_status"] == "success"
    assert cfg.read_bytes() == config_before          # runs never rewrite the config


def test_daemon_exits_0_on_sigint(tmp_path, daemons):
    write_config(tmp_path, [job("a", "true", "daily", "02:00")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    assert d.stop(signal.SIGINT) == 0
    assert "SIGINT received" in d.log


def test_daemon_picks_up_a_cli_add_live(tmp_path, daemons):
    write_config(tmp_path, [job("nightly", "echo night", "daily", "02:00")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    done = cli(tmp_path, "add", "live", "echo live", "--type", "interval", "--time", "1")
    assert done.returncode == 0, done.stderr
    # the README promises "within a second"; a generous limit keeps this a test of behaviour, not of speed
    wait_for(lambda: records(tmp_path, "live", "success"), timeout=15, what="the added job to run")
    assert "config reloaded" in d.log
    assert d.proc.poll() is None
    done = cli(tmp_path, "disable", "live")
    assert done.returncode == 0
    assert d.stop() == 0


def test_a_second_scheduler_on_the_same_config_exits_2_naming_the_pid(tmp_path, daemons):
    write_config(tmp_path, [job("a", "true", "daily", "02:00")], settings=fast_settings())
    first = daemons(tmp_path)
    first.started()
    second = subprocess.run([PY, "-m", "insect_console", "-c", CONFIG_REL, "scheduler", "--no-ui"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    line = assert_one_line_error(second, f"pid {first.pid}", CONFIG_REL)
    assert "already running" in line
    assert first.proc.poll() is None                     # the first one is unharmed
    assert first.stop() == 0


def test_sighup_reloads_the_config(tmp_path, daemons):
    """The config is a symlink into a directory inotify does not watch, so only SIGHUP can bring the change."""
    real = write_config(tmp_path, [job("nightly", "echo night", "daily", "02:00")], settings=fast_settings(), rel="real/jobs.toml")
    link = tmp_path / CONFIG_REL
    link.parent.mkdir()
    link.symlink_to(real)
    d = daemons(tmp_path)
    d.started()
    new = write_config(tmp_path, [job("nightly", "echo night", "daily", "02:00"), job("hup", "echo hup", "interval", "1")],
                       settings=fast_settings(), rel="real/jobs.new")
    os.replace(new, real)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: records(tmp_path, "hup", "success"), timeout=15, what="the job added before SIGHUP to run")
    log = d.log
    assert "SIGHUP received" in log and "config reloaded: 2 jobs" in log
    assert link.is_symlink()
    assert d.stop() == 0


def test_a_broken_config_while_running_keeps_the_old_jobs_and_is_not_rewritten(tmp_path, daemons):
    cfg = write_config(tmp_path, [job("tick", "echo tick", "interval", "1")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    wait_for(lambda: records(tmp_path, "tick", "success"), what="a first run")
    broken = cfg.read_text() + "\n[[jobs]\nname = 'x'\n"
    cfg.write_text(broken)
    d.wait_log("config not reloaded")
    seen = len(records(tmp_path, "tick"))
    wait_for(lambda: len(records(tmp_path, "tick", "success")) > seen, what="the old job to keep running")
    assert d.proc.poll() is None
    assert cfg.read_text() == broken
    assert d.stop() == 0


def test_sigterm_during_a_run_ends_it_records_it_and_exits_0(tmp_path, daemons):
    cfg = write_config(tmp_path, [job("long", "sh -c 'echo started; sleep 300 & sleep 300'", "interval", "1")],
                       settings=fast_settings(shutdown_grace=1))
    d = daemons(tmp_path)
    d.started()
    run_id, entry = wait_for(lambda: running_entry(cfg, "long"), what="the long job to start")
    assert d.stop(signal.SIGTERM) == 0
    assert run_survivors(run_id) == []
    assert not is_alive(entry["pid"])
    [record] = [r for r in records(tmp_path, "long") if r.get("run_id") == run_id]
    check_batch_result(record)
    assert record["status"] == "interrupted"
    assert read_state(cfg)["running"] == {}


def test_kill_9_mid_run_then_restart_records_interrupted_and_ends_the_leftover(tmp_path, daemons):
    cfg = write_config(tmp_path, [job("long", "sleep 30", "interval", "1")], settings=fast_settings())
    crashed = daemons(tmp_path)
    crashed.started()
    run_id, entry = wait_for(lambda: running_entry(cfg, "long"), what="the job to start")
    leftover = entry["pid"]
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.proc.wait(30)
    assert is_alive(leftover)                          # the crash left the run's process behind
    assert records(tmp_path, "long", "interrupted") == []
    assert cli(tmp_path, "disable", "long").returncode == 0  # the restarted daemon must not start it again
    restarted = daemons(tmp_path)
    restarted.started()
    [record] = wait_for(lambda: records(tmp_path, "long", "interrupted"), what="the interrupted record")
    check_batch_result(record)
    assert record["run_id"] == run_id
    assert record["start_time"] == entry["start_time"]
    wait_for(lambda: not is_alive(leftover), timeout=15, what="the leftover sleep to be ended")
    assert run_survivors(run_id) == []
    assert run_id not in read_state(cfg)["running"]
    assert read_state(cfg)["jobs"]["long"]["last_status"] == "interrupted"
    assert restarted.stop() == 0


def test_run_job_goes_through_a_running_daemon(tmp_path, daemons):
    write_config(tmp_path, [job("report", "echo report line", "daily", "02:00")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    done = cli(tmp_path, "run-job", "report")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "report line\n"
    assert "run by the daemon" in done.stderr
    [record] = records(tmp_path, "report")
    assert (record["status"], record["trigger"]) == ("success", "manual")
    assert d.stop() == 0


def test_run_job_exit_75_while_the_daemon_runs_the_job(tmp_path, daemons):
    release = tmp_path / "release"
    cfg = write_config(tmp_path, [job("held", wait_file_cmd(release, "done"), "daily", "02:00")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    with cli_process(tmp_path, "run-job", "held", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as first:
        wait_for(lambda: running_entry(cfg, "held"), what="the daemon to run the job")
        assert_one_line_error(cli_forked(tmp_path, "run-job", "held"), "held", code=75)
        assert cli_forked(tmp_path, "run-job", "--local", "held").returncode == 75   # the per-job lock is shared
        release.touch()
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert out == "done\n"
    assert d.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_job_interrupted_while_the_daemon_runs_it(tmp_path, daemons, sig):
    cfg = write_config(tmp_path, [job("long", "sh -c 'echo started; sleep 300'", "daily", "02:00")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    with cli_process(tmp_path, "run-job", "long", stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        run_id, entry = wait_for(lambda: running_entry(cfg, "long"), what="the daemon to run the job")
        wait_for(lambda: os.path.exists(entry["output_file"]) and open(entry["output_file"]).read(), what="the job's first line")
        os.kill(proc.pid, sig)
        proc.communicate(timeout=30)
    assert proc.returncode != 0
    wait_for(lambda: records(tmp_path, "long"), what="the run's record")
    assert run_survivors(run_id) == []
    assert d.proc.poll() is None                      # the daemon itself goes on
    assert d.stop() == 0


def test_a_run_that_ends_within_the_shutdown_grace_is_recorded_as_it_ended(tmp_path, daemons):
    release = tmp_path / "release"
    cfg = write_config(tmp_path, [job("finishing", wait_file_cmd(release, "finished"), "interval", "1")],
                       settings=fast_settings(shutdown_grace=60))
    d = daemons(tmp_path)
    d.started()
    run_id, _ = wait_for(lambda: running_entry(cfg, "finishing"), what="the job to start")
    d.proc.send_signal(signal.SIGTERM)
    d.wait_log("SIGTERM received")
    assert d.proc.poll() is None                     # waiting for the run, within the grace
    release.touch()
    assert d.proc.wait(30) == 0
    [record] = [r for r in records(tmp_path, "finishing") if r.get("run_id") == run_id]
    assert (record["status"], record["output"]) == ("success", "finished\n")
    assert [r["status"] for r in records(tmp_path, "finishing") if r["status"] != "skipped"] == ["success"]  # nothing new started


def test_list_shows_the_daemons_runs(tmp_path, daemons):
    release = tmp_path / "release"
    cfg = write_config(tmp_path, [job("busy", wait_file_cmd(release), "interval", "1"), job("idle", "true", "interval", "1h")],
                       settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    wait_for(lambda: running_entry(cfg, "busy"), what="the job to start")
    status = {s["name"]: s for s in json.loads(cli_forked(tmp_path, "list", "--json").stdout)}
    published = read_state(cfg).get("next_runs", {})
    assert status["idle"]["next_run"] == published["idle"]   # the daemon's next run, not a fresh preview
    table = cli_forked(tmp_path, "list").stdout.splitlines()
    busy_row = next(line for line in table if line.startswith("busy"))
    assert "running" in busy_row.split()
    release.touch()
    assert d.stop() == 0
