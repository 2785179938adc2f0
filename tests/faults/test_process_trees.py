"""Timeout and kill end the whole tree: grandchildren, ones that ignore SIGTERM, ones that called setsid."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from insect_console.engine import Engine
from insect_console.events import RunFinished

from .kit import CLI_TIMEOUT, WAIT, LOG_REL, alive, cli, fast, job, note, processes_with_env, strict_records, wait_for, write_config

# Every pid goes to ./pids: the shell itself (which then ignores SIGTERM), a plain child, a child
# that ignores SIGTERM, one in its own session that ignores SIGTERM, an orphan that called setsid
# and ignores SIGTERM, and an orphan daemon that called setsid and closed its pipes.
TREE_SH = r"""
echo $$ >> pids
sleep 600 & echo $! >> pids
sh -c 'trap "" TERM; exec sleep 601' & echo $! >> pids
setsid sh -c 'trap "" TERM; exec sleep 602' & echo $! >> pids
sh -c 'setsid sh -c "trap \"\" TERM; echo \$\$ >> pids; exec sleep 603" & exit 0'
sh -c 'setsid sleep 604 </dev/null >/dev/null 2>&1 & echo $! >> pids; exit 0'
trap "" TERM
echo ready
wait
"""
TREE_PIDS = 6


def _setup(tmp_path: Path, timeout: int = 2) -> tuple[Path, str]:
    (tmp_path / "tree.sh").write_text(TREE_SH)
    marker = uuid.uuid4().hex
    config = write_config(
        tmp_path,
        [job("tree", "sh tree.sh", "interval", "3600", timeout=timeout, env={"TREE_TAG": marker})],
        settings=fast(kill_grace=1),
    )
    return config, marker


def _pids(tmp_path: Path) -> list[int]:
    try:
        return [int(x) for x in (tmp_path / "pids").read_text().split()]
    except FileNotFoundError:
        return []


def _assert_zero_survivors(tmp_path: Path, marker: str) -> None:
    pids = _pids(tmp_path)
    assert len(pids) == TREE_PIDS, f"the tree did not start fully: {pids}"
    survivors = [p for p in pids if alive(p)]
    assert survivors == [], f"survivors: {survivors}"
    assert processes_with_env("TREE_TAG", marker) == []
    note(faults_injected=1, processes_ended=len(pids))


def test_timeout_ends_the_whole_tree_in_process(tmp_path: Path):
    config, marker = _setup(tmp_path)
    engine = Engine(config, base_dir=tmp_path)
    record = engine.execute(engine.config.job("tree"))
    assert record["status"] == "timeout", record
    assert record["error"] == "timed out after 2 s"
    assert "ready" in record["output"]
    _assert_zero_survivors(tmp_path, marker)
    note(runs_recorded=1)


def test_timeout_ends_the_whole_tree_via_run_job(tmp_path: Path):
    _config, marker = _setup(tmp_path)
    done = cli(tmp_path, "run-job", "tree", timeout=CLI_TIMEOUT)
    assert done.returncode == 124, done.stderr
    _assert_zero_survivors(tmp_path, marker)
    (record,) = strict_records(tmp_path / LOG_REL)
    assert record["status"] == "timeout"
    note(runs_recorded=1)


def test_kill_ends_the_whole_tree(tmp_path: Path):
    config, marker = _setup(tmp_path, timeout=600)
    engine = Engine(config, base_dir=tmp_path)
    finished: list[dict] = []
    got = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, RunFinished):
            finished.append(event.record)
            got.set()

    engine.subscribe(on_event)
    engine.start()
    try:
        engine.run_now("tree")
        wait_for(lambda: len(_pids(tmp_path)) == TREE_PIDS, timeout=WAIT, what="the whole tree to start")
        assert engine.kill("tree")
        assert got.wait(60), "the killed run never finished"
    finally:
        engine.stop(grace=0)
    (record,) = finished
    assert record["status"] == "error" and record["error"] == "killed on request", record
    _assert_zero_survivors(tmp_path, marker)
    assert [r["status"] for r in strict_records(tmp_path / LOG_REL)] == ["error"]
    note(runs_recorded=1)
