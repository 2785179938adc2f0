"""What a run may require before it starts: free disk, a cool CPU, enough battery, a command
that succeeds. Read when the run is due (psutil, or the settings' `battery_command` for boards
psutil can't read), compared with the job's `require` table.

`unmet()` returns the first reason the run can't start yet ("battery 22 % < 30 %"), or None.
A reading that can't be taken counts as unmet (a station that can't tell its battery level
should not start a capture that may drain it), and says so.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping

import psutil

from insect_console.sysstats import cpu_temperature

COMMAND_TIMEOUT = 10.0
"""Seconds a condition command (or the battery command) may take; a hung one counts as unmet."""


def disk_free_mb(path: str | Path) -> float | None:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return psutil.disk_usage(str(p)).free / (1024 * 1024)
    except OSError:
        return None


def battery_pct(battery_command: str = "", cwd: str | None = None) -> tuple[float | None, str]:
    """The battery level in %, and where it came from (or why there is none)."""
    if battery_command.strip():
        try:
            done = subprocess.run(shlex.split(battery_command), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, f"battery_command timed out after {COMMAND_TIMEOUT:g} s"
        except (OSError, ValueError) as e:
            return None, f"battery_command failed: {e}"
        text = done.stdout.decode(errors="replace").strip().rstrip("%").strip()
        try:
            return float(text.split()[0]), "battery_command"
        except (ValueError, IndexError):
            return None, f"battery_command printed {text[:40]!r}, not a number"
    reader = getattr(psutil, "sensors_battery", None)
    battery = reader() if reader is not None else None
    if battery is None:
        return None, "no battery reading (set battery_command for a PiJuice or Witty Pi)"
    return float(battery.percent), "psutil"


def run_command(command: str, cwd: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """None when `command` (run through /bin/sh) exits 0, else why not. One that takes longer
    than COMMAND_TIMEOUT is ended with its whole process group."""
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=dict(env) if env else None, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        return f"`{command}` can't run: {e.strerror or e}"
    try:
        code = proc.wait(COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"`{command}` timed out after {COMMAND_TIMEOUT:g} s"
    return None if code == 0 else f"`{command}` exited {code}"


def unmet(require: Mapping[str, Any], *, cwd: str, battery_command: str = "", env: Mapping[str, str] | None = None,
          temperature: Callable[[], float | None] = cpu_temperature) -> str | None:
    """The first condition of `require` that does not hold now, in words; None when all hold."""
    if "disk_free_mb" in require:
        path = require.get("disk_path") or cwd
        free = disk_free_mb(path)
        if free is None:
            return f"disk free of {path} unknown"
        if free < require["disk_free_mb"]:
            return f"disk {free:,.0f} MB free < {require['disk_free_mb']:,} MB"
    if "max_cpu_temp_c" in require:
        temp = temperature()
        if temp is None:
            return "CPU temperature unknown (no sensor)"
        if temp > require["max_cpu_temp_c"]:
            return f"CPU {temp:.0f} °C > {require['max_cpu_temp_c']} °C"
    if "min_battery_pct" in require:
        level, source = battery_pct(battery_command, cwd)
        if level is None:
            return source
        if level < require["min_battery_pct"]:
            return f"battery {level:.0f} % < {require['min_battery_pct']} %"
    if "command" in require:
        reason = run_command(require["command"], cwd, {**os.environ, **(env or {})})
        if reason:
            return reason
    return None
