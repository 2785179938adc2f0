"""Debian packages that some tests need (a real sshd, a headless Chromium): found, or installed
with apt-get when missing, or the test is skipped with the reason.

The machine's package list is shared by every checkout and test run on it, so an install runs
under one machine-wide file lock (and apt's own lock is waited for, not failed on). A package's
service is never started by the install (a policy-rc.d that says no is in place meanwhile): the
tests run the programs themselves, on ports and files of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import threading

import pytest

LOCK_PATH = "/tmp/insect-console-apt.lock"
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


def require_binary(binary: str, package: str) -> str:
    """The path of `binary`; installs Debian's `package` first when it is missing and we are
    root (`apt-get install -y --no-install-recommends`); `pytest.skip` where that can't be done."""
    found = shutil.which(binary, path=_SEARCH)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{binary} is not installed and can't be installed here (needs root and apt-get): apt-get install {package}")
    # the install's minutes don't count against the test's own timeout: pytest-timeout's SIGALRM
    # timer is paused, then resumed with what was left of it
    on_main = threading.current_thread() is threading.main_thread()
    left, interval = signal.setitimer(signal.ITIMER_REAL, 0) if on_main else (0.0, 0.0)
    try:
        with open(LOCK_PATH, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = shutil.which(binary, path=_SEARCH)  # another run may have installed it meanwhile
            if found:
                return found
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", package]
            with _no_service_starts():
                done = subprocess.run(install, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1200)
                if done.returncode != 0:  # an old package list: update it once, then try again
                    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
                    done = subprocess.run(install, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1200)
            found = shutil.which(binary, path=_SEARCH)
    finally:
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left, interval)
    if not found:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"{binary}: apt-get install {package} failed: {last[0]}")
    return found



POLICY = "/usr/sbin/policy-rc.d"


@contextlib.contextmanager
def _no_service_starts():
    """While it lasts, invoke-rc.d starts no service (exit 101: Debian's "action forbidden"),
    unless the machine already has a policy of its own (a container image's, say)."""
    if os.path.exists(POLICY):
        yield
        return
    with open(POLICY, "w") as f:
        f.write("#!/bin/sh\n# written by insect-console's tests while apt installs a package: start no service\nexit 101\n")
    os.chmod(POLICY, 0o755)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(POLICY)
