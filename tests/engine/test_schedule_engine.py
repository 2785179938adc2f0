"""The new schedule types in a real engine: boot jobs once per boot (the state keeps the boot
id), jittered runs start at their delayed due time, and a real daemon starts a cron job and a
window's first run when due. Runs are real subprocesses; time is a ManualClock where it can be.
"""

from __future__ import annotations

import datetime as dt
import queue

import pytest

from helpers import fast_settings, history_records, job, read_state, wait_for, write_config
from insect_console.clock import ManualClock
from insect_console.events import RunFinished, RunStarted
from insect_console.triggers import Boot, aware, naive_local

UTC = dt.timezone.utc


def _runs(engine, clock):
    """(queue of RunFinished, clock readings at each RunStarted)."""
    done: queue.Queue = queue.Queue()
    started: list[dt.datetime] = []
    engine.subscribe(lambda e: done.put(e) if isinstance(e, RunFinished) else None)
    engine.subscribe(lambda e: started.append(clock.now()) if isinstance(e, RunStarted) else None)
    return done, started


def test_a_boot_job_runs_once_per_boot_not_per_restart(tmp_path, engines):
    cfg = write_config(tmp_path, [job("wake", "echo awake", "boot", "5m")], settings=fast_settings())
    boot = Boot("boot-1", dt.datetime(2026, 5, 1, 4, 0, tzinfo=UTC))
    clock = ManualClock(naive_local(boot.at + dt.timedelta(seconds=40)))
    first = engines(cfg, base_dir=tmp_path, clock=clock, boot=boot)
    done, started = _runs(first, clock)
    first.start()
    assert first.scheduler.next_run("wake") == naive_local(boot.at + dt.timedelta(minutes=5))
    wait_for(lambda: clock.sleeping, what="the loop to sleep")
    clock.advance(260)
    assert done.get(timeout=20).record["status"] == "success"
    assert started == [naive_local(boot.at + dt.timedelta(minutes=5))]
    wait_for(lambda: not first.active_runs(), what="the run's slot to be free")
    assert read_state(cfg)["boot_runs"] == {"wake": "boot-1"}
    first.stop(grace=5)

    again = engines(cfg, base_dir=tmp_path, clock=clock, boot=boot)         # the daemon restarted, same boot
    again.start()
    assert again.scheduler.next_run("wake") is None
    assert again.status()[0].next_run is None
    again.stop(grace=5)

    reboot = Boot("boot-2", dt.datetime(2026, 5, 2, 4, 0, tzinfo=UTC))
    clock.set(naive_local(reboot.at + dt.timedelta(seconds=30)))
    after = engines(cfg, base_dir=tmp_path, clock=clock, boot=reboot)
    after.start()
    assert after.scheduler.next_run("wake") == naive_local(reboot.at + dt.timedelta(minutes=5))
    after.stop(grace=5)
    assert [r["job_name"] for r in history_records(tmp_path / "logs" / "batch")] == ["wake"]


def test_a_jittered_job_starts_at_its_delayed_due_time(tmp_path, engines):
    """The run starts exactly at due + delay (the engine's own start instant, on a ManualClock),
    and that is within [02:00, 02:05) of the local clock of the configured zone."""
    settings = fast_settings(timezone="UTC")
    cfg = write_config(tmp_path, [job("upload", "echo up", "daily", "02:00", jitter="5m")], settings=settings)
    start = naive_local(dt.datetime(2026, 5, 1, 1, 0, tzinfo=UTC))
    clock = ManualClock(start)
    engine = engines(cfg, base_dir=tmp_path, clock=clock, boot=Boot("b", dt.datetime(2026, 5, 1, tzinfo=UTC)))
    done, started = _runs(engine, clock)
    engine.start()
    due = engine.scheduler.next_run("upload")
    base = naive_local(dt.datetime(2026, 5, 1, 2, 0, tzinfo=UTC))
    assert base <= due < base + dt.timedelta(minutes=5)
    wait_for(lambda: clock.sleeping, what="the loop to sleep")
    clock.advance((due - start).total_seconds() - 0.5)
    wait_for(lambda: clock.sleeping, what="the loop to sleep before the due time")
    assert done.empty() and started == []
    clock.advance(0.5)
    record = done.get(timeout=20).record
    assert record["status"] == "success" and record["trigger"] == "schedule"
    assert started == [due]
    engine.stop(grace=5)


def test_a_real_daemon_starts_a_cron_job_and_a_window_opening_when_due(tmp_path, daemons):
    """A cron job due every minute, and a 20 s interval job whose window opens at the next minute:
    both start at that minute (not before it, and each once per due time)."""
    now = dt.datetime.now().astimezone()
    opening = (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (opening - now).total_seconds() < 5:                                 # too close to set up in time: the one after
        opening += dt.timedelta(minutes=1)
    closing = opening + dt.timedelta(minutes=5)
    window = f"{opening:%H:%M}..{closing:%H:%M}"
    stamp = "import datetime,sys; print(datetime.datetime.now().astimezone().isoformat())"
    write_config(tmp_path, [
        job("minutely", f"python3 -c '{stamp}'", "cron", "* * * * *", shell=True),
        job("night", f"python3 -c '{stamp}'", "interval", "20s", window=window, shell=True),
    ], settings=fast_settings())
    d = daemons(tmp_path).started()
    log_dir = tmp_path / "logs" / "batch"
    wait_for(lambda: {r["job_name"] for r in history_records(log_dir)} >= {"minutely", "night"}, timeout=150,
             what="both jobs to run at the window's opening")
    d.stop()
    for record in history_records(log_dir):
        assert record["status"] == "success", record
        ran_at = dt.datetime.fromisoformat(record["output"].strip())
        assert ran_at >= opening - dt.timedelta(minutes=1 if record["job_name"] == "minutely" else 0), record
    night = [r for r in history_records(log_dir) if r["job_name"] == "night"]
    assert dt.datetime.fromisoformat(night[0]["output"].strip()) >= opening


def test_status_over_the_control_socket_has_the_schedule_in_words_and_the_daemons_next_runs(tmp_path, daemons):
    from helpers import CONFIG_REL
    from insect_console.config import ConfigStore
    from insect_console.control import ControlClient, socket_path
    from insect_console.surface import JobStatus

    write_config(tmp_path, [job("traps", "true", "interval", "10m", window="sunset+30m..sunrise-1h", jitter="1m"),
                            job("survey", "true", "cron", "*/10 5-21 * * 1-5")],
                 settings=fast_settings(latitude=52.5, longitude=13.4))
    daemons(tmp_path).started()
    client = ControlClient(socket_path(ConfigStore(CONFIG_REL, tmp_path).runtime_dir))
    try:
        jobs = {j["name"]: JobStatus.from_wire(j) for j in client.call("status")["jobs"]}
    finally:
        client.close()
    assert jobs["traps"].schedule == "every 10m, sunset+30m to sunrise−1h, +≤1m random"
    assert jobs["survey"].schedule == "every 10th minute from 05:00 through 21:59 on Monday through Friday"
    published = read_state(tmp_path / CONFIG_REL)["next_runs"]
    for name, status in jobs.items():
        assert status.next_run is not None and status.next_run.replace(microsecond=0) == dt.datetime.fromisoformat(published[name])


class LocalClock(ManualClock):
    """A ManualClock that keeps UTC and reads as the system's naive local time, fold included,
    as `datetime.now()` does: with TZ set to a zone with DST, its readings go back an hour in
    autumn while no time goes back."""

    def now(self) -> dt.datetime:
        return naive_local(super().now())


@pytest.fixture
def berlin_system_zone(monkeypatch):
    """The process's local time is Europe/Berlin for the test (TZ + tzset), then UTC again."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_dst_change_of_the_system_clock_is_not_a_clock_jump(tmp_path, engines, berlin_system_zone):
    """The autumn night on a Pi whose system zone has DST: the naive local clock goes back from
    02:59:59 to 02:00:00. Not a jump: a 02:30 job runs once, a 30 min interval keeps its spacing
    in elapsed time, and no ClockJumped is emitted."""
    from insect_console.events import ClockJumped

    cfg = write_config(tmp_path, [job("nightly", "true", "daily", "02:30"), job("half", "true", "interval", "30m")],
                       settings=fast_settings(timezone="Europe/Berlin"))
    clock = LocalClock(dt.datetime(2026, 10, 24, 23, 50, tzinfo=UTC))       # 01:50 CEST
    engine = engines(cfg, base_dir=tmp_path, clock=clock, boot=Boot("b", dt.datetime(2026, 10, 24, tzinfo=UTC)))
    jumps: list = []
    runs: list[str] = []
    engine.subscribe(lambda e: jumps.append(e) if isinstance(e, ClockJumped) else None)
    engine.subscribe(lambda e: runs.append(e.job_name) if isinstance(e, RunStarted) else None)
    engine.max_sleep = 10                                                   # so each 20 s step below wakes the loop
    engine.start()
    half_due = [engine.scheduler.next_run("half")]
    for _ in range(int(3.5 * 3600 / 20)):                                   # to 04:20 CET, 20 s at a time
        wait_for(lambda: clock.sleeping >= 1 and not engine.active_runs(), what="the loop to sleep")
        sleeps = clock.sleeps
        clock.advance(20)                                                   # past the loop's sleep: it looks again
        wait_for(lambda: clock.sleeps > sleeps and clock.sleeping >= 1 and not engine.active_runs(), what="the loop to react")
        if engine.scheduler.next_run("half") != half_due[-1]:
            half_due.append(engine.scheduler.next_run("half"))
    engine.stop(grace=5)
    assert jumps == []
    assert runs.count("nightly") == 1                                       # 02:30 CEST, not again at 02:30 CET
    assert runs.count("half") == 7, (runs, half_due)                        # 00:20 ... 03:20 UTC, every 30 min
    elapsed = [aware(b) - aware(a) for a, b in zip(half_due, half_due[1:])]  # the naive readings go back; instants do not
    assert elapsed and all(d == dt.timedelta(minutes=30) for d in elapsed), half_due
