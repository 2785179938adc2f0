"""The CLI and the headless daemon never load textual (nor rich): they stay light on a Pi.

The Textual side of the package is named once, here and in pyproject.toml's import-linter
contract: `app.py`, `screens/` and `widgets/`. Every other module of the package is found by
walking it (no hand-kept list), imported in a fresh interpreter, and must load neither.
"""

from __future__ import annotations

import json
import pkgutil
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import insect_console
from helpers import CONFIG_REL, PY, end_process, job, wait_for, write_config

UI_PACKAGES = ("textual", "rich")
UI_PATHS = ("insect_console.app", "insect_console.screens", "insect_console.widgets")
"""The console: the only modules allowed to import textual and rich."""
PYPROJECT = Path(insect_console.__file__).resolve().parent.parent / "pyproject.toml"


def package_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(insect_console.__path__, "insect_console."))


def engine_modules() -> list[str]:
    """Every module outside the UI paths."""
    return [m for m in package_modules() if not any(m == ui or m.startswith(ui + ".") for ui in UI_PATHS)]


def ui_modules(names) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in UI_PACKAGES)


def test_the_walk_finds_the_engine_and_the_console():
    assert {"insect_console.engine", "insect_console.cli", "insect_console.surface"} <= set(engine_modules())
    assert "insect_console.app" not in engine_modules() and "insect_console.screens.jobs" in package_modules()


def test_every_engine_module_is_in_the_import_linter_contract():
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    forbidden = next(c for c in contracts if c["type"] == "forbidden")
    assert set(forbidden["forbidden_modules"]) == set(UI_PACKAGES)
    missing = sorted(set(engine_modules()) - set(forbidden["source_modules"]))
    stale = sorted(set(forbidden["source_modules"]) - set(engine_modules()))
    assert not missing, f"add these to source_modules in pyproject.toml's import-linter contract: {missing}"
    assert not stale, f"these modules are gone; remove them from the contract: {stale}"


def test_import_linter_contracts_are_kept():
    """Statically: no engine module imports textual or rich, even indirectly, and no import cycle."""
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), str(PYPROJECT)],
                          cwd=PYPROJECT.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_cli_list_in_a_fresh_interpreter_loads_no_textual(tmp_path):
    write_config(tmp_path, [job("a", "true")])
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
    assert "insect_console.surface" in result["modules"]  # the check is meaningful: the status code was loaded
    assert ui_modules(result["modules"]) == []


def test_importing_every_engine_module_loads_no_textual(tmp_path):
    script = "import importlib, json, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint(json.dumps(sorted(sys.modules)))"
    importable = [m for m in engine_modules() if m != "insect_console.__main__"]  # that one runs the CLI
    done = subprocess.run([PY, "-c", script, *importable], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ui_modules(json.loads(done.stdout)) == []


def test_python_m_list_with_importtime_mentions_no_textual(tmp_path):
    write_config(tmp_path, [job("a", "true")])
    done = subprocess.run([PY, "-X", "importtime", "-m", "insect_console", "-c", CONFIG_REL, "list"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "insect_console.surface" in imported
    assert ui_modules(imported) == []


def test_headless_scheduler_loads_no_textual(tmp_path):
    write_config(tmp_path, [job("tick", "echo tick", "interval", "1")], settings={"shutdown_grace": 2, "kill_grace": 1})
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
    write_config(tmp_path, [job("a", "true", "daily", "02:00")])
    d = daemons(tmp_path, python_args=["-X", "importtime"])
    d.started()
    assert d.stop() == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in d.log.splitlines() if line.startswith("import time:")]
    assert "insect_console.engine" in imported
    assert ui_modules(imported) == []
