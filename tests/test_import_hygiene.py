"""The CLI and the headless daemon never load textual (nor rich): they stay light on a Pi."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap

from helpers import CONFIG_REL, PY, end_process, job_toml, wait_for, write_config

UI_PACKAGES = ("textual", "rich")

ENGINE_MODULES = [
    "insect_console.jobs", "insect_console.config", "insect_console.state", "insect_console.history", "insect_console.runner",
    "insect_console.proctree", "insect_console.scheduling", "insect_console.clock", "insect_console.engine", "insect_console.cli",
    "insect_console.daemon", "insect_console.integrations", "insect_console.notify", "insect_console.events", "insect_console.fileio",
    "insect_console.sdnotify", "insect_console.pings", "insect_console.metrics", "insect_console.operations",
]


def ui_modules(names) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in UI_PACKAGES)


def test_cli_list_in_a_fresh_interpreter_loads_no_textual(tmp_path):
    write_config(tmp_path, job_toml("a", "true"))
    script = textwrap.dedent(
        f"""\
        import json, sys
        import insect_console.cli
        code = insect_console.cli.main(["-c", {CONFIG_REL!r}, "list"])
        code2 = insect_console.cli.main(["-c", {CONFIG_REL!r}, "list", "--json"])
        print(json.dumps({{"code": [code, code2], "modules": sorted(sys.modules)}}), file=sys.stderr)
        """
    )
    done = subprocess.run([PY, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["code"] == [0, 0]
    assert "insect_console.engine" in result["modules"]  # the check is meaningful: the engine was loaded
    assert ui_modules(result["modules"]) == []


def test_importing_every_engine_module_loads_no_textual(tmp_path):
    script = "import importlib, json, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([PY, "-c", script, *ENGINE_MODULES], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ui_modules(json.loads(done.stdout)) == []


def test_python_m_list_with_importtime_mentions_no_textual(tmp_path):
    write_config(tmp_path, job_toml("a", "true"))
    done = subprocess.run([PY, "-X", "importtime", "-m", "insect_console", "-c", CONFIG_REL, "list"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "insect_console.engine" in imported
    assert ui_modules(imported) == []


def test_headless_scheduler_loads_no_textual(tmp_path):
    write_config(tmp_path, job_toml("tick", "echo tick", "interval", "1"), settings={"shutdown_grace": 2, "kill_grace": 1})
    dump = tmp_path / "modules.json"
    script = textwrap.dedent(
        f"""\
        import atexit, json, sys
        atexit.register(lambda: open({str(dump)!r}, "w").write(json.dumps(sorted(sys.modules))))
        from insect_console.cli import main
        sys.exit(main(["-c", {CONFIG_REL!r}, "scheduler", "--no-ui"]))
        """
    )
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([PY, "-c", script], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: "tick: success" in log.read_text() or proc.poll() is not None, what="a run by the daemon")
            assert proc.poll() is None, log.read_text()
            code = end_process(proc, signal.SIGTERM)
        finally:
            end_process(proc, signal.SIGKILL)
    assert code == 0, log.read_text()
    modules = json.loads(dump.read_text())
    assert "insect_console.daemon" in modules and "insect_console.runner" in modules
    assert ui_modules(modules) == []


def test_headless_scheduler_via_python_m_with_importtime(tmp_path, daemons):
    write_config(tmp_path, job_toml("a", "true", "daily", "02:00"))
    d = daemons(tmp_path, python_args=["-X", "importtime"])
    d.wait_started()
    assert d.stop() == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in d.log().splitlines() if line.startswith("import time:")]
    assert "insect_console.engine" in imported
    assert ui_modules(imported) == []
