"""Due times on an injected clock: daily, weekly ("sunday" = Sunday 00:00), intervals that keep their grid.

Nothing here sleeps to test schedule math: a ManualClock is moved by hand. The engine tests at
the end wait (with generous limits) only for the real subprocess a due job starts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import random

import pytest

from helpers import fast_settings, history_records, job, wait_file_cmd, wait_for, write_config
from insect_console.clock import ManualClock
from insect_console.engine import MAX_SLEEP
from insect_console.scheduling import next_run_preview
from insect_console.events import RunFinished, RunSkipped, RunStarted
from insect_console.jobs import make_job
from insect_console.scheduling import JobScheduler

D = dt.datetime


def a_job(name: str, kind: str, when: str, enabled: bool = True):
    """A validated Job (what the scheduler takes) of the shared builder's dict."""
    return make_job(job(name, "true", kind, when, enabled=enabled))


def scheduler_at(start: D, *jobs, anchors=None):
    clock = ManualClock(start)
    s = JobScheduler(clock)
    s.sync(jobs, anchors=anchors)
    return clock, s


# -- daily ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "now, expected",
    [
        (D(2024, 1, 10, 1, 0), D(2024, 1, 10, 2, 0)),      # later today
        (D(2024, 1, 10, 1, 59, 59), D(2024, 1, 10, 2, 0)),
        (D(2024, 1, 10, 3, 0), D(2024, 1, 11, 2, 0)),      # passed: tomorrow
        (D(2024, 1, 10, 23, 59), D(2024, 1, 11, 2, 0)),
        (D(2024, 12, 31, 12, 0), D(2025, 1, 1, 2, 0)),     # over a year end
        (D(2024, 2, 28, 5, 0), D(2024, 2, 29, 2, 0)),      # leap day
    ],
)
def test_daily_next_run(now, expected):
    _, s = scheduler_at(now, a_job("d", "daily", "02:00"))
    assert s.next_run("d") == expected


def test_daily_with_seconds():
    _, s = scheduler_at(D(2024, 1, 10, 14, 30, 0), a_job("d", "daily", "14:30:15"))
    assert s.next_run("d") == D(2024, 1, 10, 14, 30, 15)


def test_daily_is_due_at_its_time_once_then_tomorrow():
    clock, s = scheduler_at(D(2024, 1, 10, 1, 0), a_job("d", "daily", "02:00"))
    clock.set(D(2024, 1, 10, 1, 59, 59))
    assert s.due() == []
    assert s.seconds_until_next() == pytest.approx(1.0)
    clock.set(D(2024, 1, 10, 2, 0, 0))
    assert s.seconds_until_next() <= 0
    assert s.due() == ["d"]
    assert s.due() == []
    assert s.next_run("d") == D(2024, 1, 11, 2, 0)


def test_daily_runs_on_consecutive_days():
    clock, s = scheduler_at(D(2024, 1, 10, 12, 0), a_job("d", "daily", "02:00"))
    seen = []
    for _ in range(5):
        clock.set(s.next_run("d"))
        assert s.due() == ["d"]
        seen.append(clock.now())
    assert seen == [D(2024, 1, d, 2, 0) for d in range(11, 16)]


# -- weekly ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "now",
    [D(2024, 1, 3, 10, 0), D(2024, 1, 3, 0, 0), D(2024, 1, 5, 23, 30), D(2024, 1, 6, 17, 42, 13), D(2024, 1, 1, 0, 0, 1)],
    ids=["wed-10:00", "wed-00:00", "fri-23:30", "sat-17:42:13", "mon-00:00:01"],
)
def test_sunday_means_sunday_midnight_whatever_time_the_scheduler_starts(now):
    _, s = scheduler_at(now, a_job("w", "weekly", "sunday"))
    assert s.next_run("w") == D(2024, 1, 7, 0, 0)  # 2024-01-07 is a Sunday
    assert s.next_run("w").weekday() == 6


def test_sunday_started_on_a_sunday_afternoon_waits_for_next_sunday_midnight():
    _, s = scheduler_at(D(2024, 1, 7, 10, 0), a_job("w", "weekly", "sunday"))
    assert s.next_run("w") == D(2024, 1, 14, 0, 0)


def test_sunday_one_second_before_midnight():
    clock, s = scheduler_at(D(2024, 1, 6, 23, 59, 59), a_job("w", "weekly", "sunday"))
    assert s.seconds_until_next() == pytest.approx(1.0)
    clock.advance(1)
    assert s.due() == ["w"]
    assert s.next_run("w") == D(2024, 1, 14, 0, 0)


def test_weekly_with_time_on_the_same_day():
    _, s = scheduler_at(D(2024, 1, 7, 1, 0), a_job("w", "weekly", "sun 03:00"))
    assert s.next_run("w") == D(2024, 1, 7, 3, 0)


@pytest.mark.parametrize("day, expected", [("monday", D(2024, 1, 8)), ("wednesday", D(2024, 1, 10)), ("saturday", D(2024, 1, 6))])
def test_other_weekdays(day, expected):
    _, s = scheduler_at(D(2024, 1, 3, 10, 0), a_job("w", "weekly", day))  # a Wednesday, 10:00
    assert s.next_run("w") == expected


def test_weekly_is_due_every_seven_days():
    clock, s = scheduler_at(D(2024, 1, 3, 10, 0), a_job("w", "weekly", "sunday"))
    runs = []
    for _ in range(3):
        clock.set(s.next_run("w"))
        assert s.due() == ["w"]
        runs.append(clock.now())
    assert runs == [D(2024, 1, 7), D(2024, 1, 14), D(2024, 1, 21)]


# -- intervals keep their grid ------------------------------------------------------------------------

def test_first_interval_run_is_one_interval_after_start():
    _, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), a_job("i", "interval", "60"))
    assert s.next_run("i") == D(2024, 1, 1, 10, 1, 0)
    assert s.seconds_until_next() == pytest.approx(60.0)


def test_a_late_run_does_not_push_the_grid():
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), a_job("i", "interval", "60"))
    clock.advance(60.7)  # the loop woke 0.7 s late
    assert s.due() == ["i"]
    assert s.next_run("i") == D(2024, 1, 1, 10, 2, 0)  # not 10:02:00.7


def test_missed_periods_run_once_and_stay_on_the_grid():
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), a_job("i", "interval", "60"))
    clock.advance(5 * 60 + 30)  # suspended for five and a half periods
    assert s.due() == ["i"]
    assert s.due() == []
    assert s.next_run("i") == D(2024, 1, 1, 10, 6, 0)


def test_grid_holds_over_many_runs_with_jitter():
    start = D(2024, 1, 1, 10, 0, 0)
    clock, s = scheduler_at(start, a_job("i", "interval", "15m"))
    rng = random.Random(7)
    for k in range(1, 101):
        clock.set(start + dt.timedelta(minutes=15 * k, seconds=rng.uniform(0, 30)))
        assert s.due() == ["i"]
        assert s.next_run("i") == start + dt.timedelta(minutes=15 * (k + 1))


@pytest.mark.parametrize(
    "anchor, expected",
    [
        (D(2024, 1, 1, 9, 59, 30), D(2024, 1, 1, 10, 0, 30)),    # last run 30 s ago: next in 30 s
        (D(2024, 1, 1, 8, 0, 10), D(2024, 1, 1, 10, 0, 10)),     # long ago: next grid point after now
        (D(2024, 1, 1, 9, 59, 0), D(2024, 1, 1, 10, 1, 0)),      # exactly on the grid now: one period on
        (D(2024, 1, 1, 10, 0, 30), D(2024, 1, 1, 10, 0, 30)),    # an anchor just ahead is kept
        (D(2024, 1, 1, 12, 0, 10), D(2024, 1, 1, 10, 1, 0)),     # far ahead (clock went back): at most one period
    ],
)
def test_interval_anchor_from_the_last_run_carries_the_grid_over_a_restart(anchor, expected):
    _, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), a_job("i", "interval", "60"), anchors={"i": anchor})
    assert s.next_run("i") == expected


def test_anchors_do_not_move_fixed_time_jobs():
    _, s = scheduler_at(D(2024, 1, 1, 10, 0), a_job("d", "daily", "02:00"), anchors={"d": D(2024, 1, 1, 9, 0)})
    assert s.next_run("d") == D(2024, 1, 2, 2, 0)


# -- sync --------------------------------------------------------------------------------------------

def test_sync_keeps_unchanged_jobs_and_resets_changed_ones():
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), a_job("a", "interval", "60"), a_job("b", "interval", "60"))
    clock.advance(30)
    s.sync([a_job("a", "interval", "60"), a_job("b", "interval", "120"), a_job("c", "daily", "02:00")])
    assert s.next_run("a") == D(2024, 1, 1, 10, 1, 0)      # untouched
    assert s.next_run("b") == D(2024, 1, 1, 10, 2, 30)     # changed: from now
    assert s.next_run("c") == D(2024, 1, 2, 2, 0)          # new
    s.sync([a_job("a", "interval", "60", enabled=False), a_job("b", "interval", "120")])
    assert s.next_run("a") is None                          # disabled
    assert s.next_run("c") is None                          # removed
    s.sync([])
    assert s.seconds_until_next() is None
    assert s.due() == []


def test_disabled_jobs_are_never_due():
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0), a_job("off", "interval", "1", enabled=False))
    clock.advance(3600)
    assert s.due() == []
    assert s.seconds_until_next() is None


def test_several_jobs_due_together_each_once():
    clock, s = scheduler_at(D(2024, 1, 1, 1, 0), a_job("a", "daily", "02:00"), a_job("b", "daily", "02:00"), a_job("c", "interval", "1h"))
    clock.set(D(2024, 1, 1, 2, 0))
    assert sorted(s.due()) == ["a", "b", "c"]
    assert s.due() == []


def test_next_run_preview_matches_the_scheduler():
    clock = ManualClock(D(2024, 1, 3, 10, 0))
    assert next_run_preview(a_job("w", "weekly", "sunday"), clock) == D(2024, 1, 7, 0, 0)
    assert next_run_preview(a_job("d", "daily", "02:00"), clock) == D(2024, 1, 4, 2, 0)
    assert next_run_preview(a_job("off", "daily", "02:00", enabled=False), clock) is None


# -- the engine's loop on a manual clock ---------------------------------------------------------------

def _finished(engine):
    q: queue.Queue = queue.Queue()
    engine.subscribe(lambda e: q.put(e) if isinstance(e, (RunFinished, RunSkipped)) else None)
    return q


def test_engine_runs_an_interval_job_when_the_clock_reaches_it(tmp_path, engines):
    cfg = write_config(tmp_path, [job("tick", "echo tick", "interval", "60")], settings=fast_settings())
    clock = ManualClock(D(2024, 1, 1, 10, 0, 0))
    engine = engines(cfg, base_dir=tmp_path, clock=clock)
    events = _finished(engine)
    engine.start()
    assert events.empty()
    clock.advance(60)
    first = events.get(timeout=20)
    assert isinstance(first, RunFinished) and first.record["status"] == "success"
    assert first.record["trigger"] == "schedule" and first.record["output"] == "tick\n"
    assert engine.scheduler.next_run("tick") == D(2024, 1, 1, 10, 2, 0)
    wait_for(lambda: "tick" not in engine.active_runs(), what="the worker to let go of the run")
    clock.advance(60)
    assert events.get(timeout=20).record["status"] == "success"
    engine.stop(grace=5)
    assert [r["job_name"] for r in history_records(tmp_path / "logs" / "batch")] == ["tick", "tick"]


def _nightly(tmp_path, engines, start: D, command: str = "echo night"):
    """A started engine on a ManualClock at `start` with one job due daily at 02:00:
    (clock, engine, its RunFinished/RunSkipped queue, the clock readings at each RunStarted)."""
    cfg = write_config(tmp_path, [job("nightly", command, "daily", "02:00")], settings=fast_settings())
    clock = ManualClock(start)
    engine = engines(cfg, base_dir=tmp_path, clock=clock)
    events = _finished(engine)
    started_at = []
    engine.subscribe(lambda e: started_at.append(clock.now()) if isinstance(e, RunStarted) else None)
    engine.start()
    return clock, engine, events, started_at


def test_engine_runs_a_daily_job_at_its_time_and_not_before(tmp_path, engines):
    clock, engine, events, started_at = _nightly(tmp_path, engines, D(2024, 1, 1, 1, 59, 0))
    clock.advance(58)  # 01:59:58
    clock.advance(1)   # 01:59:59: still nothing
    clock.advance(1)   # 02:00:00
    event = events.get(timeout=20)
    assert event.job_name == "nightly" and event.record["status"] == "success"
    assert started_at == [D(2024, 1, 1, 2, 0, 0)]
    assert engine.scheduler.next_run("nightly") == D(2024, 1, 2, 2, 0)
    engine.stop(grace=5)
    assert len(history_records(tmp_path / "logs" / "batch")) == 1


def _slow_every_minute(tmp_path, engines):
    """A started engine at 10:00 on a ManualClock with "slow", every 60 s, running until the
    file `release` exists: (clock, engine, its RunFinished/RunSkipped queue, release)."""
    release = tmp_path / "release"
    cfg = write_config(tmp_path, [job("slow", wait_file_cmd(release), "interval", "60")], settings=fast_settings())
    clock = ManualClock(D(2024, 1, 1, 10, 0, 0))
    engine = engines(cfg, base_dir=tmp_path, clock=clock)
    events = _finished(engine)
    engine.start()
    return clock, engine, events, release


def test_engine_skips_a_due_run_while_the_job_still_runs(tmp_path, engines):
    clock, engine, events, release = _slow_every_minute(tmp_path, engines)
    clock.advance(60)
    wait_for(lambda: engine.status()[0].running, what="slow to be running")
    clock.advance(60)
    skipped = events.get(timeout=20)
    assert isinstance(skipped, RunSkipped) and skipped.job_name == "slow"
    assert "still running" in skipped.reason
    release.touch()
    finished = events.get(timeout=20)
    assert isinstance(finished, RunFinished) and finished.record["status"] == "success"
    engine.stop(grace=5)
    statuses = sorted(r["status"] for r in history_records(tmp_path / "logs" / "batch"))
    assert statuses == ["skipped", "success"]


# -- starting on the due instant: prepared ahead, spawned when due ------------------------------

def test_peek_due_looks_ahead_without_moving_anything_on():
    clock, s = scheduler_at(D(2024, 1, 1, 1, 59, 59, 980000), a_job("d", "daily", "02:00"), a_job("i", "interval", "60"))
    assert s.peek_due(clock.now()) == []
    ahead = s.peek_due(clock.now() + dt.timedelta(seconds=0.025))
    assert [(d.name, d.at) for d in ahead] == [("d", D(2024, 1, 1, 2, 0))]
    assert s.next_run("d") == D(2024, 1, 1, 2, 0)          # a peek changes nothing


def test_a_fixed_time_job_taken_early_is_moved_on_to_its_next_day_not_run_twice():
    clock, s = scheduler_at(D(2024, 1, 1, 1, 59, 59, 980000), a_job("d", "daily", "02:00"))
    s.move_on(s.peek_due(clock.now() + dt.timedelta(seconds=0.025)))
    assert s.next_run("d") == D(2024, 1, 2, 2, 0)          # not 02:00 today again
    clock.advance(0.02)
    assert s.due() == []


def test_a_burst_is_peeked_earliest_first_and_a_job_changed_in_between_is_left_as_synced():
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), *(a_job(f"j{i}", "daily", f"10:00:{i:02d}") for i in (3, 1, 2)))
    clock.set(D(2024, 1, 1, 10, 0, 3))
    taken = s.peek_due(clock.now())
    assert [d.name for d in taken] == ["j1", "j2", "j3"]
    s.sync([a_job("j1", "daily", "10:00:01"), a_job("j2", "daily", "11:00"), a_job("j3", "daily", "10:00:03")])
    s.move_on(taken)
    assert s.next_run("j1") == D(2024, 1, 2, 10, 0, 1)
    assert s.next_run("j2") == D(2024, 1, 1, 11, 0)        # changed by the sync: as the sync made it
    assert s.next_run("j3") == D(2024, 1, 2, 10, 0, 3)


def _asleep(engine, clock) -> None:
    """Wait until the engine's loop sleeps: the clock is moved only then."""
    wait_for(lambda: clock.sleeping >= 1, what="the loop to sleep")


def _advance(clock, seconds: float) -> None:
    """Move the clock, then wait until the loop has looked at it and sleeps again."""
    sleeps = clock.sleeps
    clock.advance(seconds)
    wait_for(lambda: clock.sleeps > sleeps and clock.sleeping >= 1, what="the loop to react")


def _prepared(engine, clock):
    """From 01:59:59, move to 10 ms before 02:00 (within the lead); the run prepared for it."""
    _asleep(engine, clock)
    clock.advance(0.99)
    armed = wait_for(lambda: engine._slots.get("nightly"), what="the run to be prepared")  # the engine's own slot: its JobRun
    wait_for(lambda: armed.run is not None and clock.sleeping >= 2, what="the run to wait for its instant")
    return armed


def test_engine_prepares_a_run_ahead_and_spawns_it_when_due(tmp_path, engines):
    clock, engine, events, started_at = _nightly(tmp_path, engines, D(2024, 1, 1, 1, 59, 59))
    armed = _prepared(engine, clock)
    assert armed.run.pid is None and started_at == []     # prepared, not started
    assert engine.scheduler.next_run("nightly") == D(2024, 1, 2, 2, 0)
    clock.advance(0.01)                                    # 02:00:00
    event = events.get(timeout=20)
    assert event.record["status"] == "success" and event.record["output"] == "night\n"
    assert started_at == [D(2024, 1, 1, 2, 0, 0)]
    engine.stop(grace=5)
    assert len(history_records(tmp_path / "logs" / "batch")) == 1


def test_a_run_prepared_ahead_is_not_started_when_the_engine_stops_first(tmp_path, engines):
    marker = tmp_path / "ran"
    clock, engine, _, _ = _nightly(tmp_path, engines, D(2024, 1, 1, 1, 59, 59), command=f"touch {marker}")
    fds_before = len(os.listdir("/proc/self/fd"))
    armed = _prepared(engine, clock)
    engine.stop(grace=5)
    assert not marker.exists() and armed.run.pid is None
    assert history_records(tmp_path / "logs" / "batch") == []
    assert engine.active_runs() == {}
    assert len(os.listdir("/proc/self/fd")) <= fds_before  # its wake pipe was given back


def test_a_run_that_ends_within_the_lead_is_not_skipped(tmp_path, engines):
    """Whether a due run is skipped is decided at its due time, not when it is prepared."""
    clock, engine, events, release = _slow_every_minute(tmp_path, engines)
    _asleep(engine, clock)
    clock.advance(60)                                      # 10:01:00: slow starts
    wait_for(lambda: engine.status()[0].running, what="slow to be running")
    _asleep(engine, clock)
    _advance(clock, 59.99)                                 # 10 ms before the next run, still running
    assert events.empty()                                  # not skipped ahead of time
    release.touch()
    assert events.get(timeout=20).record["status"] == "success"
    wait_for(lambda: not engine.active_runs(), what="the worker to let go of the run")
    clock.advance(0.01)                                    # 10:02:00: due, and free again
    assert events.get(timeout=20).record["status"] == "success"
    engine.stop(grace=0)
    statuses = sorted(r["status"] for r in history_records(tmp_path / "logs" / "batch"))
    assert "skipped" not in statuses and len(statuses) == 2


def test_list_preview_agrees_with_the_grid_a_scheduler_would_use(tmp_path, engines):
    """`list` without a daemon shows when the job would run if the scheduler started now."""
    cfg = write_config(tmp_path, [job("hourly", "true", "interval", "3600")])
    last = D(2024, 1, 1, 9, 0, 0)
    state = {"version": 1, "running": {}, "jobs": {"hourly": {"last_run": last.astimezone().isoformat(), "last_status": "success", "error_count": 0}}}
    cfg.with_name("batch_config.state.json").write_text(json.dumps(state))
    clock = ManualClock(D(2024, 1, 1, 9, 30, 0))
    preview = engines(cfg, base_dir=tmp_path, clock=clock).status()[0].next_run
    started = engines(cfg, base_dir=tmp_path, clock=clock)
    started.start()
    actual = started.status()[0].next_run
    started.stop(grace=0)
    assert actual == D(2024, 1, 1, 10, 0, 0)  # on the grid of the last run
    assert preview == actual


# -- wall-clock jumps (README "The Pi's clock") -----------------------------------------------------------

def jump(clock, s, seconds):
    clock.set(clock.now() + dt.timedelta(seconds=seconds))
    s.on_clock_jump(seconds)


@pytest.mark.parametrize("seconds", [7200, -7200, 30 * 86400, -86400])
def test_interval_grid_moves_with_a_jump(seconds):
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0, 0), a_job("i", "interval", "60"))
    clock.advance(20)
    jump(clock, s, seconds)
    assert s.due() == []                                   # no burst, no early run
    assert s.next_run("i") == D(2024, 1, 1, 10, 1, 0) + dt.timedelta(seconds=seconds)
    clock.advance(40)
    assert s.due() == ["i"]                                # one period of elapsed time after the start


def test_forward_jump_within_3h_runs_jumped_over_times_once():
    clock, s = scheduler_at(D(2024, 1, 1, 1, 0), a_job("d", "daily", "02:00"), a_job("e", "daily", "03:30"), a_job("late", "daily", "05:00"))
    jump(clock, s, 3 * 3600)                               # 01:00 -> 04:00
    assert sorted(s.due()) == ["d", "e"]
    assert s.due() == []
    assert s.next_run("d") == D(2024, 1, 2, 2, 0) and s.next_run("late") == D(2024, 1, 1, 5, 0)


def test_backward_jump_within_3h_does_not_run_a_time_twice():
    clock, s = scheduler_at(D(2024, 1, 1, 10, 0), a_job("d", "daily", "11:00"))
    clock.set(D(2024, 1, 1, 11, 0))
    assert s.due() == ["d"]
    clock.advance(60)
    jump(clock, s, -2 * 3600)                              # 11:01 -> 09:01
    assert s.next_run("d") == D(2024, 1, 2, 11, 0)
    clock.set(D(2024, 1, 1, 11, 0, 30))
    assert s.due() == []


def test_forward_jump_over_3h_resets_fixed_times_without_catch_up():
    clock, s = scheduler_at(D(2024, 1, 1, 1, 0), a_job("d", "daily", "02:00"), a_job("w", "weekly", "monday 03:00"))
    jump(clock, s, 5 * 3600)                               # 01:00 -> 06:00 on Monday 2024-01-01
    assert s.due() == []
    assert s.next_run("d") == D(2024, 1, 2, 2, 0)
    assert s.next_run("w") == D(2024, 1, 8, 3, 0)


def test_backward_jump_over_3h_resets_fixed_times_to_the_new_clock():
    clock, s = scheduler_at(D(2024, 1, 5, 10, 0), a_job("d", "daily", "11:00"))
    jump(clock, s, -4 * 86400)                             # a Pi booting with an old clock: 2024-01-01 10:00
    assert s.next_run("d") == D(2024, 1, 1, 11, 0)


def test_engine_notices_a_clock_jump(tmp_path, engines):
    from insect_console.events import ClockJumped

    cfg = write_config(tmp_path, [job("i", "true", "interval", "1h")], settings=fast_settings())
    clock = ManualClock(D(2024, 1, 1, 10, 0, 0))
    engine = engines(cfg, base_dir=tmp_path, clock=clock)
    jumps: queue.Queue = queue.Queue()
    engine.subscribe(lambda e: jumps.put(e) if isinstance(e, ClockJumped) else None)
    engine.start()
    wait_for(lambda: clock.sleeping, what="the loop to sleep")
    clock.set(D(2024, 1, 1, 12, 0, 0))   # NTP steps the wall clock; monotonic time does not move
    clock.advance(MAX_SLEEP)             # the loop's longest sleep: it wakes and compares the clocks
    event = jumps.get(timeout=20)
    assert event.seconds == pytest.approx(7200, abs=1)
    assert engine.scheduler.next_run("i") == D(2024, 1, 1, 13, 0, 0)   # the 1 h spacing is kept
    engine.stop(grace=0)
    assert history_records(tmp_path / "logs" / "batch") == []
