"""What the station is, read from the system: its boot and its identity, and the `Site` the
triggers get from them and the settings.

The triggers are pure; this is where the I/O they need is done, once per scheduler start or
config reload: the kernel's boot id (a new one each boot: a daemon restart keeps it, a reboot
does not), how long ago the machine booted, and /etc/machine-id (each station's own jitter).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from insect_console.clock import Clock
from insect_console.config import Settings
from insect_console.triggers.base import Boot, Site, aware, zone_named

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MACHINE_ID = Path("/etc/machine-id")


def read_boot(clock: Clock) -> Boot:
    """This boot: its id, and when it happened on `clock` (now minus the time since boot, which
    CLOCK_BOOTTIME counts with suspend included, so NTP stepping the wall clock moves it too)."""
    try:
        boot_id = BOOT_ID.read_text().strip()
    except OSError:  # not Linux: the boot time, to the second, identifies the boot
        boot_id = ""
    since = time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()
    at = aware(clock.now()) - dt.timedelta(seconds=since)
    return Boot(boot_id or f"boot@{int(time.time() - since)}", at)


def machine_seed() -> str:
    try:
        return MACHINE_ID.read_text().strip()
    except OSError:
        import socket

        return socket.gethostname()


def site_for(settings: Settings, boot: Boot | None = None, seed: str | None = None) -> Site:
    """The Site of these settings (zone, place) on this machine (boot, seed)."""
    return Site(
        zone=zone_named(settings.timezone), latitude=settings.latitude, longitude=settings.longitude,
        elevation=settings.elevation, boot=boot, seed=machine_seed() if seed is None else seed,
    )
