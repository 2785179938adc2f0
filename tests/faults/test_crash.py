"""kill -9 of the daemon mid-run, and SIGTERM with runs in progress (real daemons, real jobs)."""

from __future__ import annotations

import signal
from pathlib import Path

from .kit import (
    WAIT,
    LOG_REL,
    Daemon,
    fast,
    job,
    lost_records,
    note,
    parse_toml,
    read_state,
    run_processes,
    strict_records,
    wait_for,
    write_config,
)

# A run whose tree has every kind of process: a plain child, one that ignores SIGTERM, one in
# its own session, and an orphan that called setsid (neither a descendant nor in the group).
TREE = (
    "echo tree up; "
    "sleep 300 & "
    "sh -c \"trap '' TERM; exec sleep 301\" & "
    "setsid sh -c \"trap '' TERM; exec sleep 302\" & "
    "sh -c 'setsid sleep 303 & exit 0'; "
    "wait"
)
TREE_PROCS = 5  # sh, sleep 300, sleep 301, sleep 302, sleep 303


def _running_tree(config: Path, exclude: set[str]) -> str | None:
    """The run id of a `tree` run in progress (not one of `exclude`) whose processes are all up."""
    for run_id, entry in read_state(config)["running"].items():
        if entry.get("job_name") == "tree" and run_id not in exclude and len(run_processes(run_id)) >= TREE_PROCS:
            return run_id
    return None


def test_kill9_mid_run_then_restart(tmp_path: Path):
    config = write_config(
        tmp_path,
        [job("tree", TREE, "interval", "2", shell=True), job("quick", "true", "interval", "1")],
        settings=fast(),
    )
    config_bytes = config.read_bytes()
    log_dir = tmp_path / LOG_REL
    cut_off: list[str] = []
    daemon = Daemon(tmp_path).started()
    try:
        for _cycle in range(2):
            run_id = wait_for(lambda: _running_tree(config, set(cut_off)), timeout=WAIT, what="a tree run with all its processes")
            daemon.kill9()
            note(faults_injected=1)
            cut_off.append(run_id)
            # the fault is real: the run's processes outlived the daemon
            assert len(run_processes(run_id)) >= TREE_PROCS
            assert config.read_bytes() == config_bytes
            read_state(config)  # parses
            strict_records(log_dir)  # every line valid JSON

            daemon = Daemon(tmp_path).started()
            record = wait_for(
                lambda: next((r for r in strict_records(log_dir) if r.get("run_id") == run_id), None),
                timeout=WAIT, what=f"the record of cut-off run {run_id}",
            )
            assert record["status"] == "interrupted", record
            assert record["job_name"] == "tree"
            assert "tree up" in record["output"]
            wait_for(lambda: not run_processes(run_id), timeout=20, what=f"the leftovers of {run_id} to be ended")
            assert run_id not in read_state(config)["running"]
        assert daemon.terminate() == 0
    finally:
        daemon.stop()

    assert config.read_bytes() == config_bytes
    parse_toml(config.read_bytes())
    state = read_state(config)
    assert state["running"] == {}, state["running"]
    records = strict_records(log_dir)
    assert {r["run_id"] for r in records if r["status"] == "interrupted"} >= set(cut_off)
    lost = lost_records(log_dir, records)
    note(runs_recorded=len(records), records_lost=len(lost))
    assert lost == []
    for run_id in cut_off:
        assert run_processes(run_id) == []


def test_sigterm_with_runs_in_progress(tmp_path: Path):
    """Every run gets its record and the daemon exits 0 within the grace."""
    grace, kill_grace = 3, 1
    config = write_config(
        tmp_path,
        [
            job("short", "sleep 1.5", "interval", "2"),  # ends within the grace: success
            job("long", "sleep 120", "interval", "2"),  # still running: ended, interrupted
            job("stubborn", "trap '' TERM; exec sleep 121", "interval", "2", shell=True),  # ignores SIGTERM
            job("tree", TREE, "interval", "2", shell=True),  # grandchildren of every kind
        ],
        settings=fast(shutdown_grace=grace, kill_grace=kill_grace),
    )
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        def all_running():
            running = read_state(config)["running"]
            names = {e.get("job_name") for e in running.values()}
            tree_ok = any(e.get("job_name") == "tree" and len(run_processes(r)) >= TREE_PROCS for r, e in running.items())
            return running if names == {"short", "long", "stubborn", "tree"} and tree_ok else None

        running = wait_for(all_running, timeout=WAIT, what="all four jobs running at once")
        daemon.proc.send_signal(signal.SIGTERM)
        note(faults_injected=1)
        # a liveness bound (grace + kill grace + slack), not a timing assertion
        rc = daemon.wait(timeout=grace + kill_grace + 30)
    finally:
        daemon.stop()
    assert rc == 0, daemon.log_tail()
    records = strict_records(log_dir)
    by_run = {r.get("run_id"): r for r in records}
    for run_id, entry in running.items():
        assert run_id in by_run, f"no record for {entry['job_name']} run {run_id}"
        assert run_processes(run_id) == [], entry["job_name"]
    statuses = {by_run[r]["job_name"]: by_run[r]["status"] for r in running}
    assert statuses == {"short": "success", "long": "interrupted", "stubborn": "interrupted", "tree": "interrupted"}
    assert read_state(config)["running"] == {}
    lost = lost_records(log_dir, records)
    note(runs_recorded=len(records), records_lost=len(lost))
    assert lost == []
