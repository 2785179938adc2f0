"""Fixtures of the fault suite: a per-test process tag and leak guard, tmpfs mounts, the figures."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import leftover_guard

from .kit import FIGURES


@pytest.fixture(autouse=True)
def fault_tag(monkeypatch: pytest.MonkeyPatch):
    """Tag every process the test starts; end and report any that outlives the test."""
    with leftover_guard(monkeypatch, timeout=10) as tag:
        yield tag


def mount_tmpfs(directory: Path, size: str) -> bool:
    """Mount a tmpfs of `size` on `directory`; False where that is not permitted (not root)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)], capture_output=True)
    return done.returncode == 0


def unmount(directory: Path) -> None:
    done = subprocess.run(["umount", str(directory)], capture_output=True)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for key in ("faults_injected", "runs_recorded", "records_lost", "fuzz_inputs"):
        terminalreporter.write_line(f"{key}: {FIGURES.get(key, 0)}")
    for key in sorted(set(FIGURES) - {"faults_injected", "runs_recorded", "records_lost", "fuzz_inputs"}):
        terminalreporter.write_line(f"  {key}: {FIGURES[key]}")
    out = os.environ.get("INSECT_FAULTS_FIGURES")
    if out:
        with contextlib.suppress(OSError):
            Path(out).write_text(json.dumps(dict(FIGURES), indent=1, sort_keys=True))
