"""A real OpenSSH server for the tests of consoles over ssh: Debian's `sshd` on a free loopback
port, with a throwaway host key, a client key in an `authorized_keys`, and an `ssh_config`
that names each station (`Host station-a`, ...) so a test reaches it as a user would, by name.

Everything lives in a temp dir; `stop()` ends sshd and every session it started (the
`control-stdio` bridges on the station side do not carry the tests' process tag: sshd gives
each session a fresh environment).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from debian import require_binary
from helpers import kill_processes

REMOTE_COMMAND = str(Path(sys.executable).with_name("insect-console"))
"""This checkout's insect-console, as the station runs it (sshd's PATH does not have the venv)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """`/usr/sbin/sshd -D -e -f <dir>/sshd_config` on 127.0.0.1:`port`; stations by name in `ssh_config`."""

    def __init__(self, directory: Path, stations: tuple[str, ...] = ("station-a",)) -> None:
        self.sshd = require_binary("sshd", "openssh-server")
        ssh_keygen = require_binary("ssh-keygen", "openssh-client")
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.port = free_port()
        self.host_key = directory / "host_ed25519"
        self.client_key = directory / "client_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run([ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
        (directory / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.config = directory / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {directory / 'authorized_keys'}", "StrictModes no", f"PidFile {directory / 'sshd.pid'}",
            "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            "LogLevel VERBOSE", "",
        ]))
        self.client_config = directory / "ssh_config"
        self.write_client_config(stations)
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def write_client_config(self, stations: tuple[str, ...], extra: dict[str, str] | None = None) -> None:
        """`Host NAME` for each station (all this sshd), plus `extra`: NAME -> more options."""
        blocks = []
        for name in stations:
            blocks.append("\n".join([
                f"Host {name}", "  HostName 127.0.0.1", f"  Port {self.port}", f"  User {os.environ.get('USER') or 'root'}",
                f"  IdentityFile {self.client_key}", "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
                "  UserKnownHostsFile /dev/null", "  BatchMode yes", "  LogLevel ERROR", *(f"  {o}" for o in (extra or {}).get(name, "").splitlines() if o),
            ]))
        self.client_config.write_text("\n\n".join(blocks) + "\n")

    @property
    def ssh(self) -> list[str]:
        """The ssh command a console uses to reach these stations."""
        return ["ssh", "-F", str(self.client_config)]

    def start(self) -> "Sshd":
        self.proc = subprocess.Popen([self.sshd, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 20
        while not any("Server listening" in line for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("sshd did not start:\n" + "\n".join(self.lines))
            time.sleep(0.02)
        return self

    def _read(self) -> None:
        for raw in self.proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def sessions(self) -> list[psutil.Process]:
        """sshd's children: one per connection (and their commands below them)."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def stop(self) -> None:
        """End sshd and every session it started."""
        if self.proc is None:
            return
        family = self.sessions()
        try:
            family.insert(0, psutil.Process(self.proc.pid))
        except psutil.Error:
            pass
        kill_processes(family)
        self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()


@contextlib.contextmanager
def running_sshd(directory: Path, stations: tuple[str, ...] = ("station-a",)):
    """An `Sshd` started for the block (a test fixture's body), always stopped after it."""
    server = Sshd(directory, stations).start()
    try:
        yield server
    finally:
        server.stop()
