"""Hostile environments, item 5: the config directory restored from a backup while the daemon
runs (`mv config config.old && cp -a config.old config`). The daemon's lock and socket were on
the old directory's files: it must take them anew, so a second scheduler is still refused and no
run is skipped as "already running in another process"."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from insect_console.control import ControlClient, socket_path
from insect_console.config import ConfigStore
from insect_console.fileio import InstanceLock

from .kit import CONFIG_REL, LOG_REL, Daemon, assert_one_line_error, cli, fast, job, note, strict_records, wait_for, write_config


def test_a_config_directory_restored_from_a_backup_keeps_one_scheduler(tmp_path: Path):
    config = write_config(tmp_path, [job("tick", "echo tick", "interval", "1")], settings=fast())
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: strict_records(tmp_path / LOG_REL), what="a first run")
        (tmp_path / "config").rename(tmp_path / "config.old")
        # a slow restore: runs fall due while the directory is away, and nothing of it is made
        # meanwhile (an empty config/ made by a state write would get the copy nested inside)
        time.sleep(2.5)
        assert not (tmp_path / "config").exists(), "the daemon made the moved-away directory anew"
        subprocess.run(["cp", "-a", str(tmp_path / "config.old"), str(tmp_path / "config")], check=True)
        swapped = time.time()
        note(faults_injected=1)
        store = ConfigStore(config, tmp_path)
        wait_for(lambda: InstanceLock.holder(store.scheduler_lock_path) == daemon.pid, timeout=60,
                 what="the daemon to hold the lock of the restored directory")
        assert "was replaced; took its scheduler lock" in daemon.log
        # a second scheduler on "the same" config is refused, as before the swap
        second = cli(tmp_path, "scheduler", "--no-ui", timeout=60)
        assert_one_line_error(second, "already running", f"pid {daemon.pid}")
        # and the daemon answers on the socket in the new directory
        client = ControlClient(socket_path(store.runtime_dir))
        try:
            assert client.call("status")["pid"] == daemon.pid
        finally:
            client.close()
        try:
            wait_for(lambda: sum(r["start_time"] > _iso(swapped) for r in strict_records(tmp_path / LOG_REL)) >= 3, what="runs after the swap")
        except AssertionError:
            raise AssertionError(daemon.log_tail()) from None
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    records = strict_records(tmp_path / LOG_REL)
    assert not [r for r in records if r["status"] == "skipped"], [r["error"] for r in records if r["status"] == "skipped"]
    note(runs_recorded=len(records))
    shutil.rmtree(tmp_path / "config.old", ignore_errors=True)


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")
