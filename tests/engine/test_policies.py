"""Run policies on a ManualClock with real job processes: catch-up after the nightly power-off,
conditions that wait, retries with backoff, chains, and groups.

The clock is moved only while the engine's loop sleeps; what ran is read from the history
files the runs wrote (trigger, due_time, attempt), never from the engine's insides.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from forkserver import cli_forked
from helpers import assert_one_line_error, cli, fast_settings, history_records, job, read_state, state_path, wait_file_cmd, wait_for, write_config
from insect_console.clock import ManualClock
from insect_console.engine import MAX_SLEEP
from insect_console.errors import AlreadyRunning
from insect_console.scheduling import due_times

D = dt.datetime
LOG = Path("logs") / "batch"


def seed_state(config: Path, jobs: dict[str, dict]) -> None:
    state_path(config).write_text(json.dumps({"version": 1, "jobs": jobs, "running": {}}))


def iso(when: D) -> str:
    return when.astimezone().isoformat(timespec="milliseconds")


def records_of(base: Path, name: str | None = None) -> list[dict]:
    return [r for r in history_records(base / LOG) if name is None or r["job_name"] == name]


def asleep(clock: ManualClock) -> None:
    wait_for(lambda: clock.sleeping >= 1, what="the loop to sleep")


def no_overlap(runs: list[dict]) -> None:
    spans = sorted((D.fromisoformat(r["start_time"]), D.fromisoformat(r["end_time"])) for r in runs)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, spans


# -- catch-up ---------------------------------------------------------------------------------


def station_off_from_23_to_7(tmp_path: Path, **three_hourly: object) -> Path:
    """A station switched off by its power board at 23:00 and on again at 07:00."""
    config = write_config(tmp_path, [
        job("nightly", "echo analysis", "daily", "02:00"),
        job("three_hourly", "echo detection", "interval", "3h", **three_hourly),
    ], fast_settings())
    seed_state(config, {
        "nightly": {"last_run": iso(D(2024, 5, 1, 2, 0)), "last_due": "2024-05-01T02:00:00", "last_status": "success"},
        "three_hourly": {"last_run": iso(D(2024, 5, 1, 21, 0)), "last_due": "2024-05-01T21:00:00", "last_status": "success"},
    })
    return config


def test_a_station_off_overnight_runs_the_0200_job_once_and_skips_missed_intervals(tmp_path, engines):
    config = station_off_from_23_to_7(tmp_path)
    clock = ManualClock(D(2024, 5, 2, 7, 0, 0))
    engines(config, base_dir=tmp_path, clock=clock).start()
    wait_for(lambda: records_of(tmp_path, "nightly"), what="the catch-up run")
    asleep(clock)
    [run] = records_of(tmp_path, "nightly")
    assert (run["status"], run["trigger"]) == ("success", "catch-up")
    assert D.fromisoformat(run["due_time"]).replace(tzinfo=None) == D(2024, 5, 2, 2, 0)
    assert records_of(tmp_path, "three_hourly") == []  # intervals: skip is the default
    wait_for(lambda: read_state(config)["jobs"]["nightly"]["last_due"] == "2024-05-02T02:00:00", what="the state to say so")


def test_catch_up_all_runs_each_missed_time_once_in_order_one_at_a_time(tmp_path, engines):
    config = station_off_from_23_to_7(tmp_path, catch_up="all")
    clock = ManualClock(D(2024, 5, 2, 7, 0, 0))
    engines(config, base_dir=tmp_path, clock=clock).start()
    wait_for(lambda: len(records_of(tmp_path, "three_hourly")) >= 3, what="three catch-up runs")
    asleep(clock)
    runs = records_of(tmp_path, "three_hourly")
    expected = [t for t in due_times(engines(config, base_dir=tmp_path).config.job("three_hourly"), D(2024, 5, 1, 21, 0), D(2024, 5, 2, 7, 0))]
    assert expected == [D(2024, 5, 2, 0, 0), D(2024, 5, 2, 3, 0), D(2024, 5, 2, 6, 0)]
    assert [D.fromisoformat(r["due_time"]).replace(tzinfo=None) for r in runs] == expected
    assert {r["trigger"] for r in runs} == {"catch-up"} and all(r["status"] == "success" for r in runs)
    no_overlap(runs)


def test_a_pi_that_boots_at_its_shutdown_time_catches_up_after_the_ntp_step(tmp_path, engines):
    """fake-hwclock: the clock reads 23:00 (the last shutdown) at boot; NTP then steps it +8 h."""
    config = station_off_from_23_to_7(tmp_path)
    clock = ManualClock(D(2024, 5, 1, 23, 0, 5))
    engines(config, base_dir=tmp_path, clock=clock).start()
    asleep(clock)
    assert records_of(tmp_path) == []  # nothing is missed yet as far as the clock knows
    clock.set(D(2024, 5, 2, 7, 0, 5))  # the NTP step: wall time jumps, monotonic time does not
    clock.advance(MAX_SLEEP)  # the loop notices at its next wake-up
    wait_for(lambda: records_of(tmp_path, "nightly"), what="the catch-up after the step")
    asleep(clock)
    [run] = records_of(tmp_path, "nightly")
    assert run["trigger"] == "catch-up" and D.fromisoformat(run["due_time"]).replace(tzinfo=None) == D(2024, 5, 2, 2, 0)
    assert records_of(tmp_path, "three_hourly") == []


def test_caught_up_once_a_restart_does_not_run_it_again(tmp_path, engines):
    config = station_off_from_23_to_7(tmp_path)
    clock = ManualClock(D(2024, 5, 2, 7, 0, 0))
    first = engines(config, base_dir=tmp_path, clock=clock)
    first.start()
    wait_for(lambda: records_of(tmp_path, "nightly"), what="the catch-up run")
    asleep(clock)
    first.stop(grace=5)
    engines(config, base_dir=tmp_path, clock=clock).start()
    asleep(clock)
    assert len(records_of(tmp_path, "nightly")) == 1


def test_a_short_forward_jump_runs_the_jumped_over_time_once(tmp_path, engines):
    """The clock-jump rule (≤ 3 h forward: times jumped over run once) and catch-up never both run it."""
    config = write_config(tmp_path, [job("nightly", "echo analysis", "daily", "02:00")], fast_settings())
    seed_state(config, {"nightly": {"last_run": iso(D(2024, 5, 1, 2, 0)), "last_due": "2024-05-01T02:00:00"}})
    clock = ManualClock(D(2024, 5, 2, 1, 30, 0))
    engines(config, base_dir=tmp_path, clock=clock).start()
    asleep(clock)
    clock.set(D(2024, 5, 2, 2, 30, 0))
    clock.advance(MAX_SLEEP)
    wait_for(lambda: records_of(tmp_path, "nightly"), what="the jumped-over run")
    asleep(clock)
    clock.advance(60)
    asleep(clock)
    assert len(records_of(tmp_path, "nightly")) == 1


def test_missed_times_older_than_catch_up_max_age_are_not_run(tmp_path, engines):
    config = write_config(tmp_path, [job("nightly", "echo analysis", "daily", "02:00", catch_up_max_age="3h")], fast_settings())
    seed_state(config, {"nightly": {"last_run": iso(D(2024, 5, 1, 2, 0)), "last_due": "2024-05-01T02:00:00"}})
    clock = ManualClock(D(2024, 5, 2, 7, 0, 0))  # 02:00 is 5 h ago
    engines(config, base_dir=tmp_path, clock=clock).start()
    asleep(clock)
    assert records_of(tmp_path) == []


# -- conditions that wait -----------------------------------------------------------------------


def test_a_run_that_needs_1_tb_free_waits_visibly_then_is_skipped_with_the_reason(tmp_path, engines):
    config = write_config(tmp_path, [job("capture", "echo captured", "daily", "10:00", require={"disk_free_mb": 1_000_000}, require_wait="2m")],
                          fast_settings())
    clock = ManualClock(D(2024, 5, 2, 9, 59, 59))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    asleep(clock)
    clock.advance(1)
    waiting = wait_for(lambda: engine.status()[0].waiting, what="the run to wait")
    assert "MB free < 1,000,000 MB" in waiting
    listed = cli_forked(tmp_path, "list")  # what a script sees, from the state file
    assert "waiting" in listed.stdout and "capture: waiting: disk" in listed.stdout, listed.stdout
    assert json.loads(cli_forked(tmp_path, "list", "--json").stdout)[0]["waiting"] == waiting
    for _ in range(4):  # rechecked every 30 s for the 2 min of require_wait
        asleep(clock)
        clock.advance(30)
    wait_for(lambda: records_of(tmp_path), what="the skipped record")
    [record] = records_of(tmp_path)
    assert record["status"] == "skipped" and "MB free < 1,000,000 MB" in record["error"] and "waited 2m" in record["error"]
    assert engine.status()[0].waiting is None


def test_a_condition_that_turns_true_lets_the_run_start(tmp_path, engines):
    flag = tmp_path / "camera"
    config = write_config(tmp_path, [job("capture", "echo captured", "daily", "10:00", require={"command": f"test -e {flag}"})], fast_settings())
    clock = ManualClock(D(2024, 5, 2, 9, 59, 59))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    asleep(clock)
    clock.advance(1)
    assert "exited 1" in wait_for(lambda: engine.status()[0].waiting, what="the run to wait")
    flag.touch()
    asleep(clock)
    clock.advance(30)
    wait_for(lambda: records_of(tmp_path), what="the run")
    [record] = records_of(tmp_path)
    assert (record["status"], record["output"], record["trigger"]) == ("success", "captured\n", "schedule")
    assert D.fromisoformat(record["due_time"]).replace(tzinfo=None) == D(2024, 5, 2, 10, 0)


def test_a_condition_command_that_hangs_is_bounded(tmp_path, engines):
    config = write_config(tmp_path, [job("capture", "echo captured", "daily", "10:00", require={"command": "sleep 60"})], fast_settings())
    clock = ManualClock(D(2024, 5, 2, 9, 59, 59))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    asleep(clock)
    clock.advance(1)
    assert "`sleep 60` timed out after 10 s" in wait_for(lambda: engine.status()[0].waiting, timeout=30, what="the run to wait")


# -- retries ----------------------------------------------------------------------------------------


def test_retries_wait_1_2_4_minutes_and_the_streak_counts_once(tmp_path, engines):
    config = write_config(tmp_path, [job("upload", "false", "daily", "10:00", retries=3, retry_delay="1m", retry_backoff=2)], fast_settings())
    clock = ManualClock(D(2024, 5, 2, 9, 59, 59))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    asleep(clock)
    clock.advance(1)
    for n, delay in enumerate([60, 120, 240], start=1):
        wait_for(lambda: len(records_of(tmp_path)) == n, what=f"attempt {n}")
        wait_for(lambda: read_state(config).get("pending", {}).get("upload"), what=f"the retry after attempt {n}")
        asleep(clock)
        clock.advance(delay - 1)
        asleep(clock)
        assert len(records_of(tmp_path)) == n  # not a second early
        clock.advance(1)
    wait_for(lambda: len(records_of(tmp_path)) == 4, what="the last attempt")
    asleep(clock)
    clock.advance(3600)
    asleep(clock)
    runs = records_of(tmp_path)
    assert [r["attempt"] for r in runs] == [1, 2, 3, 4]
    assert [r["trigger"] for r in runs] == ["schedule", "retry", "retry", "retry"]
    assert {r["due_time"] for r in runs} == {runs[0]["due_time"]}
    wait_for(lambda: read_state(config)["jobs"]["upload"].get("last_status") == "error", what="the last attempt's state")
    assert read_state(config)["jobs"]["upload"]["error_count"] == 1


def test_retries_never_start_past_the_next_due_time(tmp_path, engines):
    config = write_config(tmp_path, [job("upload", "false", "interval", "5m", retries=5, retry_delay="1m", retry_backoff=2)], fast_settings())
    clock = ManualClock(D(2024, 5, 2, 10, 0, 0))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    due = engine.status()[0].next_run  # 10:05:00
    asleep(clock)
    clock.advance((due - clock.now()).total_seconds())
    for minutes in (1, 2):  # attempts 2 and 3 at +1 and +3 min; attempt 4 would be at +7 min, past the next due time
        wait_for(lambda: len(records_of(tmp_path)) == minutes, what="an attempt")
        wait_for(lambda: read_state(config).get("pending", {}).get("upload"), what="its retry")
        asleep(clock)
        clock.advance(minutes * 60)
    wait_for(lambda: len(records_of(tmp_path)) == 3, what="attempt 3")
    wait_for(lambda: not engine.active_runs(), what="attempt 3 to be done")
    asleep(clock)
    assert read_state(config).get("pending", {}) == {}  # no retry past the next due time
    clock.advance(2 * 60)  # the job's next due time: its own run, attempt 1 again
    wait_for(lambda: len(records_of(tmp_path)) == 4, what="the next scheduled run")
    asleep(clock)
    assert [(r["trigger"], r["attempt"]) for r in records_of(tmp_path)] == [("schedule", 1), ("retry", 2), ("retry", 3), ("schedule", 1)]


def test_a_run_killed_by_the_operator_is_not_retried_and_does_not_count(tmp_path, engines):
    config = write_config(tmp_path, [job("long", "sleep 300", "daily", "10:00", retries=3)], fast_settings())
    engine = engines(config, base_dir=tmp_path, clock=ManualClock(D(2024, 5, 2, 12, 0)))
    engine.start()
    engine.run_now("long")
    wait_for(lambda: getattr(engine.active_runs().get("long"), "pid", None), what="the run")
    assert engine.kill("long")
    wait_for(lambda: records_of(tmp_path), what="the record")
    asleep(engine.clock)
    [record] = records_of(tmp_path)
    assert (record["status"], record["error"]) == ("error", "killed on request")
    wait_for(lambda: read_state(config)["jobs"].get("long", {}).get("last_status") == "error", what="the run's state")
    assert read_state(config)["jobs"]["long"]["error_count"] == 0
    assert read_state(config).get("pending", {}) == {}


# -- chains and groups -------------------------------------------------------------------------------


def test_detection_then_analysis_then_backup_from_one_trigger(tmp_path, engines):
    config = write_config(tmp_path, [
        job("detection", "echo detected", "daily", "10:00"),
        job("analysis", "echo analysed", "after", "", after=["detection"]),
        job("backup", "echo saved", "daily", "03:00", after=["analysis"]),
        job("alarm", "echo alarm", "after", "", after=["detection"], after_status="failure"),
    ], fast_settings())
    clock = ManualClock(D(2024, 5, 2, 9, 59, 59))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    asleep(clock)
    clock.advance(1)
    wait_for(lambda: len(records_of(tmp_path)) == 3, what="the chain")
    asleep(clock)
    runs = sorted(records_of(tmp_path), key=lambda r: r["start_time"])
    assert [(r["job_name"], r["trigger"]) for r in runs] == [("detection", "schedule"), ("analysis", "after:detection"), ("backup", "after:analysis")]
    no_overlap(runs)
    assert engine.status()[1].next_run is None and engine.status()[1].schedule == "after detection"


def test_chains_that_loop_or_name_no_job_are_refused(tmp_path):
    write_config(tmp_path, [job("a", "true", "after", "", after=["b"]), job("b", "true", "after", "", after=["a"])])
    assert_one_line_error(cli(tmp_path, "list"), "after", "cycle")
    write_config(tmp_path, [job("a", "true", after=["ghost"])])
    assert_one_line_error(cli(tmp_path, "list"), "ghost", "not a job")
    write_config(tmp_path, [job("a", "true"), job("b", "true", after=["a"])])
    assert_one_line_error(cli_forked(tmp_path, "add", "c", "true", "--type", "after", "--after", "c"), "follows itself")
    assert_one_line_error(cli_forked(tmp_path, "edit", "a", "--after", "b"), "cycle")
    assert_one_line_error(cli_forked(tmp_path, "remove", "a"), "b follows a", "--force")
    assert cli_forked(tmp_path, "remove", "a", "--force").returncode == 0
    assert json.loads(cli_forked(tmp_path, "list", "--json").stdout)[0].get("after") is None


def test_a_group_runs_one_job_at_a_time_and_the_other_waits_visibly(tmp_path, engines):
    release = tmp_path / "release"
    config = write_config(tmp_path, [
        job("camera_a", wait_file_cmd(release, "a"), "daily", "10:00", group="camera"),
        job("camera_b", "echo b", "daily", "10:00", group="camera"),
    ], fast_settings())
    clock = ManualClock(D(2024, 5, 2, 9, 59, 59))
    engine = engines(config, base_dir=tmp_path, clock=clock)
    engine.start()
    asleep(clock)
    clock.advance(1)
    waiting = wait_for(lambda: engine.status()[1].waiting, what="camera_b to wait")
    assert waiting == "camera_a runs (group camera)"
    assert "camera_b" not in engine.active_runs()
    release.touch()
    wait_for(lambda: len(records_of(tmp_path)) == 2, what="both runs")
    runs = sorted(records_of(tmp_path), key=lambda r: r["start_time"])
    assert [r["job_name"] for r in runs] == ["camera_a", "camera_b"] and all(r["status"] == "success" for r in runs)
    no_overlap(runs)
    wait_for(lambda: not engine.active_runs(), what="both to let go")
    release.unlink()
    engine.run_now("camera_a")
    wait_for(lambda: "camera_a" in engine.active_runs(), what="camera_a")
    with pytest.raises(AlreadyRunning, match=r"camera_a runs \(group camera\)"):
        engine.run_now("camera_b")  # a manual run of a busy group is refused, with why
    release.touch()


def test_policy_fields_go_through_add_edit_and_list(tmp_path):
    write_config(tmp_path, [job("det", "true")])
    done = cli_forked(tmp_path, "add", "ana", "true", "--type", "after", "--after", "det", "--retries", "2", "--retry-delay", "30s",
                      "--require", "disk_free_mb=500", "--require", "command=test -e /dev/null", "--group", "cam", "--catch-up", "all")
    assert done.returncode == 0, done.stderr
    listed = {j["name"]: j for j in json.loads(cli_forked(tmp_path, "list", "--json").stdout)}
    ana = listed["ana"]
    assert (ana["after"], ana["retries"], ana["retry_delay"], ana["group"], ana["catch_up"]) == (["det"], 2, "30s", "cam", "all")
    assert ana["require"] == {"disk_free_mb": 500, "command": "test -e /dev/null"}
    assert cli_forked(tmp_path, "edit", "ana", "--require", "none", "--group", "", "--retries", "0").returncode == 0
    ana = {j["name"]: j for j in json.loads(cli_forked(tmp_path, "list", "--json").stdout)}["ana"]
    assert "require" not in ana and "group" not in ana and "retries" not in ana
    for args, needle in [(("--retries", "-1"), "retries"), (("--require", "disk_free_mb=lots"), "disk_free_mb"),
                         (("--require", "wattage=3"), "require.wattage"), (("--retry-delay", "soon"), "retry_delay")]:
        assert_one_line_error(cli_forked(tmp_path, "edit", "ana", *args), needle)
