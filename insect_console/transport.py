"""The byte channels a `ControlClient` speaks the control protocol over.

The protocol is one JSON line each way whatever carries it, so the client (control.py) is
written once against `Transport`: the daemon's Unix socket on the station itself, or the pipes
of a child process, `ssh -T station insect-console control-stdio`, for a console elsewhere.
Over ssh, ssh does the keys, the encryption and the access control (as `docker -H ssh://`
does with `docker system dial-stdio`); no new server listens on the station.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import psutil

from insect_console.errors import UserError


class Transport(Protocol):
    """A two-way byte stream. `recv` blocks and returns b"" once the other side is gone;
    `close` makes a blocked `recv` return."""

    label: str
    """What it reaches, for messages ("the daemon at …", "station-a")."""

    def send(self, data: bytes) -> None:
        """All of `data`, or OSError when the other side is gone."""

    def recv(self) -> bytes: ...

    def close(self) -> None: ...

    def why_closed(self) -> str | None:
        """What the other side said last before it went (ssh's error line), if anything."""


class TransportError(UserError):
    """A channel that could not be opened."""


class UnixTransport:
    """The daemon's control socket on this machine."""

    def __init__(self, path: Path) -> None:
        self.label = f"the daemon at {path}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(path))
        except OSError as e:
            self.sock.close()
            raise TransportError(f"can't connect to the daemon at {path}: {e.strerror}") from None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def why_closed(self) -> str | None:
        return None


class ProcessTransport:
    """A child process's stdin and stdout. Its stderr is kept (the last lines), since that is
    where ssh says why it could not connect or why the connection ended.

    `own_session`: the child gets a session of its own, so it can't ask on the terminal (ssh
    in BatchMode, for a background connection) and its whole tree is ended on close. Without
    it ssh may ask for a passphrase or password on the terminal, which the first connection
    of a console does before the console takes the screen.
    """

    END_WAIT = 3.0

    def __init__(self, argv: Sequence[str], label: str, own_session: bool = True) -> None:
        self.label = label
        self.argv = list(argv)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         bufsize=0, start_new_session=own_session)
        except OSError as e:
            raise TransportError(f"{label}: can't run {self.argv[0]}: {e.strerror}") from None
        self._stderr: deque[str] = deque(maxlen=20)
        self._stderr_done = threading.Event()
        threading.Thread(target=self._read_stderr, name=f"stderr-{self.proc.pid}", daemon=True).start()
        self._write_lock = threading.Lock()

    def _read_stderr(self) -> None:
        try:
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    self._stderr.append(line)
        except (OSError, ValueError):
            pass
        finally:
            self._stderr_done.set()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        with self._write_lock:
            fd = self.proc.stdin.fileno()
            while view:
                view = view[os.write(fd, view):]

    def recv(self) -> bytes:
        try:
            return os.read(self.proc.stdout.fileno(), 65536)
        except (OSError, ValueError):
            return b""

    def why_closed(self) -> str | None:
        """The child's last line on stderr, once it has ended (ssh's reason), else None."""
        try:
            self.proc.wait(self.END_WAIT)
        except subprocess.TimeoutExpired:
            return None
        self._stderr_done.wait(1.0)
        lines = [line for line in self._stderr if not line.startswith("Warning: Permanently added")]
        return lines[-1] if lines else None

    def close(self) -> None:
        """End the child and everything it started (an ssh ProxyCommand, say)."""
        for pipe in (self.proc.stdin,):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            family = [psutil.Process(self.proc.pid)] + psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            family = []
        for p in family:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _gone, alive = psutil.wait_procs(family, timeout=self.END_WAIT)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        try:
            self.proc.wait(self.END_WAIT)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass


# -- ssh -----------------------------------------------------------------------------------------

DEFAULT_REMOTE_COMMAND = "insect-console"
SSH_ENV = "INSECT_CONSOLE_SSH"
"""The ssh command to use (split like a shell would), e.g. "ssh -F ~/.ssh/stations_config";
default "ssh". As GIT_SSH_COMMAND is for git."""
DEFAULT_CONFIG = "config/batch_config.toml"


@dataclass(frozen=True)
class SshTarget:
    """A station as `--host [user@]station[:port]` names it, and how to reach its daemon there."""

    host: str
    user: str | None = None
    port: int | None = None
    config: str = DEFAULT_CONFIG
    """The config on the station (relative paths from the login directory)."""
    remote_command: str = DEFAULT_REMOTE_COMMAND
    """How insect-console is started on the station: a shell word or words, e.g.
    "/srv/obs/.venv/bin/insect-console" or "cd /srv/obs && .venv/bin/insect-console"."""
    name: str | None = None
    """The station's name in a stations file (what the console shows), else the host."""

    @classmethod
    def parse(cls, text: str, **more) -> "SshTarget":
        """`[user@]host[:port]`, with `[v6 address]:port` for an IPv6 address."""
        spec = text.strip()
        if not spec or any(c.isspace() for c in spec) or spec.startswith("-"):
            raise UserError(f"--host {text!r}: give [user@]station[:port]")
        user, _, hostport = spec.rpartition("@")
        port = None
        if hostport.startswith("["):
            host, _, rest = hostport[1:].partition("]")
            if rest.startswith(":"):
                port = rest[1:]
            elif rest:
                raise UserError(f"--host {text!r}: give [user@]station[:port]")
        elif hostport.count(":") == 1:
            host, port = hostport.split(":")
        else:
            host = hostport
        if not host:
            raise UserError(f"--host {text!r}: no station name")
        if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
            raise UserError(f"--host {text!r}: the port must be a number from 1 to 65535")
        return cls(host=host, user=user or None, port=int(port) if port is not None else None, **more)

    @property
    def label(self) -> str:
        return self.name or self.host

    def remote_argv(self) -> str:
        """What runs on the station: its insect-console bridging to the daemon's socket."""
        return f"{self.remote_command} -c {shlex.quote(self.config)} control-stdio"

    def ssh_argv(self, batch: bool, ssh: Sequence[str] | None = None) -> list[str]:
        """The ssh command line. Options from the user's ~/.ssh/config apply (ssh reads it);
        keepalives make a dead connection noticed within a minute."""
        if ssh is None:
            ssh = shlex.split(os.environ.get(SSH_ENV) or "ssh")
        argv = [*ssh, "-T", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=15"]
        if batch:
            argv += ["-o", "BatchMode=yes"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        destination = f"{self.user}@{self.host}" if self.user else self.host
        return [*argv, "--", destination, self.remote_argv()]

    def open(self, batch: bool = True, ssh: Sequence[str] | None = None) -> ProcessTransport:
        return ProcessTransport(self.ssh_argv(batch, ssh), self.label, own_session=batch)
