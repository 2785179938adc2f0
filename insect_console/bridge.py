"""`insect-console control-stdio`: the daemon's control socket on stdin and stdout.

A console on another machine runs `ssh -T station insect-console -c CONFIG control-stdio` and
speaks the control protocol through ssh's pipes, as `docker -H ssh://` runs `docker system
dial-stdio`: ssh does the keys, the encryption and who may connect, and nothing new listens on
the station. This process only copies bytes both ways, in blocks (it never holds a whole line,
so a huge one costs it nothing; the daemon bounds requests), and ends when either side closes.
The daemon checks this process's uid like any other client's: the ssh user must be the
daemon's user (or root).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from insect_console.errors import UserError

BLOCK = 65536


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run_bridge(path: Path, config_label: str, stdin: int = 0, stdout: int = 1) -> int:
    """Copy `stdin` to the daemon's socket at `path` and its answers to `stdout` until either
    side closes. No daemon listening: UserError (one line, exit 2)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError as e:
        sock.close()
        reason = "nothing listens on its control socket" if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) else e.strerror
        raise UserError(f"no daemon is running for {config_label} ({reason}); start it with `insect-console scheduler --no-ui` or its systemd unit") from None

    def upstream() -> None:  # stdin to the daemon; at its end, tell the daemon we are done
        try:
            while data := os.read(stdin, BLOCK):
                sock.sendall(data)
        except OSError:
            pass  # the daemon dropped us (say, for a request too long): its last words still come down
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    threading.Thread(target=upstream, name="stdin-to-daemon", daemon=True).start()
    try:
        while data := sock.recv(BLOCK):
            _write_all(stdout, data)
    except OSError:  # the console side is gone (ssh closed our stdout), or the daemon reset
        pass
    finally:
        sock.close()
    return 0
