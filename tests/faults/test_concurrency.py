"""Concurrent writers: a daemon plus 20 CLI processes adding, removing, enabling and running jobs.

Each of the 20 processes is a CLI process running a sequence of `insect_console.cli.main`
commands (the very code `python -m insect_console` runs, without paying Python's start-up ~140
times on a 2-core runner); they all start together. Meanwhile a reader thread parses the config
and the state file again and again: a torn file would fail to parse.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from insect_console.config import ConfigStore

from .kit import (
    CONFIG_REL,
    TAG_ENV,
    LOG_REL,
    describe,
    kill_all,
    processes_with_env,
    PY,
    Daemon,
    assert_no_overlap,
    fast,
    job,
    lost_records,
    note,
    read_state,
    state_path,
    strict_records,
    wait_for,
    write_config,
)

WORKERS = 20

WORKER = r"""
import contextlib, io, json, os, signal, sys, time
from insect_console.cli import main

class Hung(BaseException):
    pass

def on_alarm(signum, frame):
    raise Hung()

signal.signal(signal.SIGALRM, on_alarm)
i, config, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.005)
name = f"w{i:02d}"
local = "--local" if i % 2 else None  # half run in this process, half through the daemon
steps = [
    ["add", name, "true", "--type", "interval", "--time", "1h"],
    ["disable", name],
    ["run-job", "shared"] + ([local] if local else []),
    ["enable", name],
    ["run-job", name] + ([local] if local else []),
    ["run-job", "ticker", "--local"],
]
if i % 3 == 0:
    steps.append(["edit", name, "--time", "2h"])
if i % 2:
    steps.append(["remove", name])
elif i % 4 == 0:
    steps.append(["disable", name])
results = []
for argv in steps:
    out, err = io.StringIO(), io.StringIO()
    signal.alarm(30)  # no command may hang: a stuck one is recorded as "hung"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["-c", config] + argv)
    except Hung:
        rc = "hung"
    finally:
        signal.alarm(0)
    results.append({"argv": argv, "rc": rc, "err": err.getvalue()[-500:]})
print(json.dumps(results))
"""


@dataclass
class Scenario:
    base: Path
    config: Path
    results: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    torn: list[str] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=lambda: {"config": 0, "state": 0})
    daemon_rc: int | None = None
    daemon_log: str = ""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("concurrent")
    tag = uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TAG_ENV, tag)
        try:
            yield _run(base)
        finally:
            leftovers = processes_with_env(TAG_ENV, tag)
            kill_all(leftovers)
            assert not leftovers, describe(leftovers)


def _run(base: Path) -> Scenario:
    config = write_config(
        base,
        [
            job("ticker", "sleep 0.3", "interval", "1"),  # the daemon runs it all the time
            job("shared", "sleep 0.2", "interval", "2"),  # the daemon and every worker run it
        ],
        settings=fast(),
    )
    sc = Scenario(base, config)
    store = ConfigStore(config, base)
    go = base / "go"
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = config.read_bytes()
                tomllib.loads(data.decode())
                store.parse(data)
                sc.reads["config"] += 1
            except Exception as e:  # noqa: BLE001 - any failure here is a torn or broken file
                sc.torn.append(f"config: {e!r}")
            try:
                data = state_path(config).read_bytes()
                json.loads(data)
                sc.reads["state"] += 1
            except FileNotFoundError:
                pass
            except Exception as e:  # noqa: BLE001
                sc.torn.append(f"state: {e!r}")
            time.sleep(0.002)

    daemon = Daemon(base).started()
    workers: list[subprocess.Popen] = []
    thread = threading.Thread(target=reader, daemon=True)
    try:
        thread.start()
        for i in range(WORKERS):
            workers.append(
                subprocess.Popen(
                    [PY, "-c", WORKER, str(i), CONFIG_REL, str(go)],
                    cwd=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                )
            )
        go.touch()
        for i, w in enumerate(workers):
            out, err = w.communicate(timeout=110)
            assert w.returncode == 0, err.decode()[-3000:]
            assert b"Traceback" not in err, err.decode()[-3000:]
            sc.results[i] = json.loads(out)
        stop.set()
        thread.join()
        wait_for(lambda: read_state(config).get("running") == {} or None, timeout=30, what="no run in progress")
        sc.daemon_rc = daemon.terminate()
    finally:
        stop.set()
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        daemon.stop()
        sc.daemon_log = daemon.log
    note(faults_injected=WORKERS)
    return sc


def test_no_torn_file(scenario: Scenario):
    assert scenario.torn == [], scenario.torn[:5]
    assert scenario.reads["config"] > 0 and scenario.reads["state"] > 0
    parse = ConfigStore(scenario.config, scenario.base).load(create=False)
    assert parse.jobs
    read_state(scenario.config)
    strict_records(scenario.base / LOG_REL)


def test_daemon_stops_cleanly(scenario: Scenario):
    assert scenario.daemon_rc == 0, scenario.daemon_log[-3000:]


def test_no_lost_update(scenario: Scenario):
    """The config is exactly what the 20 sequences of add/disable/enable/edit/remove imply."""
    final = ConfigStore(scenario.config, scenario.base).load(create=False)
    expected = {"ticker": (True, "1"), "shared": (True, "2")}
    for i in range(WORKERS):
        if i % 2:
            continue
        expected[f"w{i:02d}"] = (i % 4 != 0, "2h" if i % 3 == 0 else "1h")
    assert {j.name: (j.enabled, j.schedule_time) for j in final.jobs} == expected
    for i, steps in scenario.results.items():
        for step in steps:
            if step["argv"][0] != "run-job":
                assert step["rc"] == 0, (i, step)


def test_every_run_job_answers(scenario: Scenario):
    """`run-job` ends with 0, or 75 when the job is already running anywhere: it never hangs."""
    hung = [(i, s["argv"]) for i, steps in scenario.results.items() for s in steps if s["rc"] == "hung"]
    assert hung == [], f"{len(hung)} run-job command(s) never returned: {hung[:5]}"
    for i, steps in scenario.results.items():
        for step in steps:
            if step["argv"][0] == "run-job":
                expected = (0,) if step["argv"][1].startswith("w") else (0, 75)
                assert step["rc"] in expected, (i, step)


def test_no_duplicate_run_and_no_lost_record(scenario: Scenario):
    log_dir = scenario.base / LOG_REL
    records = strict_records(log_dir)
    state = read_state(scenario.config)
    assert state["running"] == {}
    for i in range(WORKERS):
        name = f"w{i:02d}"
        assert state["jobs"][name]["last_status"] == "success", i
        assert sum(r["job_name"] == name and r["status"] == "success" for r in records) == 1, name
    shared_ok = sum(
        s["rc"] == 0 for steps in scenario.results.values() for s in steps if s["argv"][:2] == ["run-job", "shared"]
    )
    manual_shared = [r for r in records if r["job_name"] == "shared" and r.get("trigger") == "manual" and r["status"] == "success"]
    assert len(manual_shared) == shared_ok
    runs = assert_no_overlap(records)
    lost = lost_records(log_dir, records)
    note(runs_recorded=len(records), records_lost=len(lost), overlap_checked_runs=runs)
    assert lost == []
