"""Failure-streak notifications: once per streak after `failure_threshold` failures, once on recovery."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
import threading

import pytest

from helpers import PY, job, py_cmd, read_state, write_config
from insect_console.events import Notification
from insect_console.notify import next_streak, notification_for
from insect_console.records import finished

NOTIFY_SCRIPT = """\
import json, os, sys
keys = ["INSECT_EVENT", "INSECT_JOB", "INSECT_STATUS", "INSECT_FAILURES", "INSECT_OUTPUT_FILE", "INSECT_MESSAGE"]
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({k: os.environ.get(k) for k in keys}) + "\\n")
"""

FLAKY = py_cmd("import os,sys; print('attempt'); sys.exit(0 if os.path.exists('ok') else 1)")


def join_notify_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == "notify":
            thread.join(timeout=30)


@pytest.fixture
def notified(tmp_path):
    """The notify command's log: one JSON line of its INSECT_* environment per call."""
    script = tmp_path / "notify.py"
    script.write_text(NOTIFY_SCRIPT)
    out = tmp_path / "notified.jsonl"

    def read() -> list[dict]:
        join_notify_threads()
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    read.command = " ".join(shlex.quote(x) for x in (PY, str(script), str(out)))
    return read


def collect(engine) -> list[Notification]:
    notes: list[Notification] = []
    engine.subscribe(lambda e: notes.append(e) if isinstance(e, Notification) else None)
    return notes


def test_three_failures_notify_once_per_streak_and_recovery_once(tmp_path, engines, notified, caplog):
    cfg = write_config(tmp_path, [job("flaky", FLAKY)], settings={"notify_command": notified.command})
    engine = engines(cfg, base_dir=tmp_path)
    notes = collect(engine)
    flaky = engine.config.job("flaky")
    ok = tmp_path / "ok"

    def run(expect: str) -> None:
        assert engine.execute(flaky)["status"] == expect

    caplog.set_level(logging.WARNING, logger="insect_console")
    run("error")
    run("error")
    assert notes == [] and notified() == []
    run("error")                                          # the third in a row
    assert [(n.kind, n.failures, n.status) for n in notes] == [("failing", 3, "error")]
    assert notes[0].job_name == "flaky" and "flaky" in notes[0].message
    [call] = notified()
    assert call["INSECT_EVENT"] == "failing"
    assert call["INSECT_JOB"] == "flaky"
    assert call["INSECT_STATUS"] == "error"
    assert call["INSECT_FAILURES"] == "3"
    assert call["INSECT_MESSAGE"] == notes[0].message
    assert call["INSECT_OUTPUT_FILE"] and open(call["INSECT_OUTPUT_FILE"]).read() == "attempt\n"
    assert any(r.levelno == logging.ERROR and "flaky" in r.getMessage() for r in caplog.records)
    assert read_state(cfg)["jobs"]["flaky"]["error_count"] == 3

    run("error")
    run("error")                                          # still the same streak: nothing more
    assert len(notes) == 1 and len(notified()) == 1
    assert read_state(cfg)["jobs"]["flaky"]["error_count"] == 5

    ok.touch()
    run("success")
    assert [n.kind for n in notes] == ["failing", "recovered"]
    assert notes[1].failures == 0 and notes[1].status == "success"
    calls = notified()
    assert [c["INSECT_EVENT"] for c in calls] == ["failing", "recovered"]
    assert calls[1]["INSECT_JOB"] == "flaky" and calls[1]["INSECT_STATUS"] == "success"
    assert read_state(cfg)["jobs"]["flaky"]["error_count"] == 0

    run("success")                                        # recovered only once
    assert len(notes) == 2 and len(notified()) == 2

    ok.unlink()
    for _ in range(3):
        run("error")                                      # a new streak notifies again
    assert [n.kind for n in notes] == ["failing", "recovered", "failing"]
    assert [c["INSECT_EVENT"] for c in notified()] == ["failing", "recovered", "failing"]


def test_a_success_before_the_threshold_resets_the_streak(tmp_path, engines, notified):
    cfg = write_config(tmp_path, [job("flaky", FLAKY)], settings={"notify_command": notified.command})
    engine = engines(cfg, base_dir=tmp_path)
    notes = collect(engine)
    flaky = engine.config.job("flaky")
    engine.execute(flaky)
    engine.execute(flaky)
    (tmp_path / "ok").touch()
    engine.execute(flaky)                                   # success: no "recovered" (never notified)
    (tmp_path / "ok").unlink()
    engine.execute(flaky)
    engine.execute(flaky)
    assert notes == [] and notified() == []
    assert read_state(cfg)["jobs"]["flaky"]["error_count"] == 2


def test_timeouts_count_as_failures_and_the_threshold_is_a_setting(tmp_path, engines, notified):
    cfg = write_config(tmp_path, [job("hangs", "sleep 300", timeout=1)],
                       settings={"notify_command": notified.command, "failure_threshold": 1, "kill_grace": 1})
    engine = engines(cfg, base_dir=tmp_path)
    notes = collect(engine)
    assert engine.execute(engine.config.job("hangs"))["status"] == "timeout"
    assert [(n.kind, n.failures, n.status) for n in notes] == [("failing", 1, "timeout")]
    [call] = notified()
    assert (call["INSECT_EVENT"], call["INSECT_STATUS"], call["INSECT_FAILURES"]) == ("failing", "timeout", "1")


def test_a_broken_notify_command_does_not_break_runs(tmp_path, engines, caplog):
    cfg = write_config(tmp_path, [job("bad", "false")],
                       settings={"notify_command": "no-such-notifier-for-insect-tests --x", "failure_threshold": 1})
    engine = engines(cfg, base_dir=tmp_path)
    notes = collect(engine)
    caplog.set_level(logging.ERROR, logger="insect_console")
    assert engine.execute(engine.config.job("bad"))["status"] == "error"
    join_notify_threads()
    assert [n.kind for n in notes] == ["failing"]
    assert engine.execute(engine.config.job("bad"))["status"] == "error"
    join_notify_threads()
    assert any("notify command failed" in r.getMessage() for r in caplog.records)


def test_without_a_notify_command_the_event_is_still_sent(tmp_path, engines):
    cfg = write_config(tmp_path, [job("bad", "false")])
    engine = engines(cfg, base_dir=tmp_path)
    notes = collect(engine)
    for _ in range(3):
        engine.execute(engine.config.job("bad"))
    assert [(n.kind, n.failures) for n in notes] == [("failing", 3)]


# -- the streak rule ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "previous, status, current",
    [(0, "error", 1), (2, "timeout", 3), (5, "success", 0), (0, "success", 0), (2, "interrupted", 2), (2, "skipped", 2)],
)
def test_next_streak(previous, status, current):
    assert next_streak(previous, status) == current


@pytest.mark.parametrize(
    "previous, current, status, kind",
    [(2, 3, "error", "failing"), (0, 1, "timeout", None), (3, 4, "error", None), (4, 0, "success", "recovered"),
     (3, 0, "success", "recovered"), (2, 0, "success", None), (0, 0, "success", None), (3, 3, "interrupted", None)],
)
def test_notification_for(previous, current, status, kind):
    at = dt.datetime(2026, 3, 14, 2, 0)
    record = finished("j", start=at, end=at, status=status, error="boom" if status != "success" else None)
    note = notification_for("j", previous, current, 3, record)
    assert (note.kind if note else None) == kind
