"""What the operations features import, and when: `list` and a daemon without a metrics file
load neither tomlkit (only config writes need it) nor prometheus_client (only a metrics file)."""

from __future__ import annotations

import subprocess

from helpers import CONFIG_REL, PY, cli, job, write_config

HEAVY = ("tomlkit", "prometheus_client")


def imported(stderr: str) -> list[str]:
    return [line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")]


def test_list_imports_neither_tomlkit_nor_prometheus_client(tmp_path):
    write_config(tmp_path, [job("a", "true")], settings={"metrics_file": "m.prom", "ping_base": "https://hc-ping.com/KEY"})
    done = subprocess.run([PY, "-X", "importtime", "-m", "insect_console", "-c", CONFIG_REL, "list"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names = imported(done.stderr)
    assert "insect_console.surface" in names  # the status code: the check is meaningful
    assert [n for n in names if n.split(".")[0] in HEAVY] == []


def test_a_config_write_imports_tomlkit(tmp_path):
    write_config(tmp_path, [job("a", "true")])
    done = cli(tmp_path, "disable", "a")
    assert done.returncode == 0, done.stderr
    script = "import sys\nfrom insect_console.cli import main\nmain(['-c', sys.argv[1], 'enable', 'a'])\nprint('tomlkit' in sys.modules, 'prometheus_client' in sys.modules)"
    done = subprocess.run([PY, "-c", script, CONFIG_REL], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["enabled", "a", "True", "False"], done.stdout + done.stderr


def test_the_daemon_without_a_metrics_file_does_not_import_prometheus_client(tmp_path, daemons):
    write_config(tmp_path, [job("a", "true", "daily", "02:00")], settings={"shutdown_grace": 2, "kill_grace": 1})
    d = daemons(tmp_path, python_args=["-X", "importtime"])
    d.started()
    assert d.stop() == 0
    names = imported(d.log)
    assert "insect_console.operations" in names and "prometheus_client" not in names
