"""Debian packages a test needs, installed by the test itself when they are missing.

CI runs on a fresh machine as root, so a test that needs a Debian program (node_exporter)
installs it there: `apt-get install -y --no-install-recommends`, under a file lock so that two
test processes don't run apt at once, waiting for dpkg's own lock if another apt runs. Where
that can't be done (not root, no apt, no such package, or installing would start the package's
service on this machine) the test is skipped with the reason.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

import pytest

LOCK = "/tmp/insect-console-tests-apt.lock"
PLACES = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin")


def find_binary(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    for place in PLACES:
        candidate = os.path.join(place, binary)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def services_would_start(package: str) -> bool:
    """Would installing `package` start its service here? Not where policy-rc.d forbids it (a
    container image's default) nor where no init system runs (invoke-rc.d then blocks it)."""
    policy = "/usr/sbin/policy-rc.d"
    if os.access(policy, os.X_OK):
        try:
            if subprocess.run([policy, package, "start"], capture_output=True, timeout=30).returncode == 101:
                return False
        except (OSError, subprocess.TimeoutExpired):
            pass
    return os.path.isdir("/run/systemd/system") or os.path.exists("/sbin/init")


def require_binary(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` first when it is missing."""
    path = find_binary(binary)
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip(f"{binary} is not installed and installing {package} needs root (apt-get install {package})")
    if not shutil.which("apt-get"):
        pytest.skip(f"{binary} is not installed and there is no apt-get to install {package}")
    if services_would_start(package):
        pytest.skip(f"{binary} is not installed, and installing {package} here would start its service: install it yourself")
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = find_binary(binary)  # another test process may have installed it meanwhile
        if path:
            return path
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", package]
        done = _run(install, env)
        if done.returncode != 0:  # a fresh machine has no package lists yet
            _run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], env)
            done = _run(install, env)
        path = find_binary(binary)
        if path is None:
            why = (done.stderr or done.stdout or "").strip().splitlines()
            pytest.skip(f"{package} could not be installed: {why[-1] if why else f'exit {done.returncode}'}")
        return path


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]} {argv[-1]} timed out after {e.timeout:g} s")
