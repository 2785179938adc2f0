"""systemd's notify protocol (sd_notify(3)) without a dependency: a datagram to $NOTIFY_SOCKET.

`READY=1`, `STATUS=...`, `WATCHDOG=1`, `RELOADING=1` (with `MONOTONIC_USEC=`), `STOPPING=1`.
An address starting with `@` is in the abstract namespace. Outside systemd (no NOTIFY_SOCKET)
every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping, MutableMapping

log = logging.getLogger("insect_console.sdnotify")

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address: str | None = address if address[:1] in ("/", "\0") and len(address) > 1 else None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and ours and self.address else None
        """The watchdog timeout systemd set (WatchdogSec=), in seconds; None when there is none."""
        self._sock: socket.socket | None = None
        if self.address is not None:  # made here: send() takes no lock, so a signal handler can call it
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self._failing = False
        self._last_watchdog = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one message (fields joined by newlines). Never blocks, never raises."""
        sock = self._sock
        if self.address is None or sock is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            sock.sendto(message, self.address)
        except OSError as e:
            if not self._failing:
                self._failing = True
                log.warning("can't notify systemd on %s: %s", self.address.replace("\0", "@"), e.strerror or e)
            return False
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}", "STATUS=reloading the config")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        """`WATCHDOG=1`, at most every quarter of the interval; meant for the scheduling loop's
        heartbeat, which wakes at least every half interval, so pings are < 3/4 interval apart."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval / 4:
            self._last_watchdog = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def from_environment(environ: MutableMapping[str, str] | None = None) -> Notifier:
    """A Notifier for this process; the variables are then removed from the environment, so
    the jobs it starts don't inherit them (what sd_notify's unset_environment does)."""
    env = os.environ if environ is None else environ
    notifier = Notifier(env)
    for name in ENV_VARS:
        env.pop(name, None)
    return notifier
