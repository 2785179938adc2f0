"""What an operator checks on a Pi: CPU %, memory, free disk on the log directory, CPU temperature.

Read with psutil, no UI: the console's status line calls `PsutilStats` on a worker thread every
few seconds (tests pass a fixed provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

from insect_console.textfmt import human_bytes

TEMPERATURE_SENSORS = ("cpu_thermal", "cpu-thermal", "soc_thermal", "coretemp", "k10temp", "zenpower", "acpitz")


@dataclass(frozen=True)
class SystemStats:
    cpu_percent: float | None = None
    mem_percent: float | None = None
    disk_free: int | None = None
    temperature: float | None = None

    def describe(self) -> str:
        """ "CPU 12% · mem 41% · disk 21.4G free · 48°C" (parts that are unknown are left out)."""
        parts = []
        if self.cpu_percent is not None:
            parts.append(f"CPU {self.cpu_percent:.0f}%")
        if self.mem_percent is not None:
            parts.append(f"mem {self.mem_percent:.0f}%")
        if self.disk_free is not None:
            parts.append(f"disk {human_bytes(self.disk_free)} free")
        if self.temperature is not None:
            parts.append(f"{self.temperature:.0f}°C")
        return " · ".join(parts)


StatsProvider = Callable[[], SystemStats]


class PsutilStats:
    """The real provider. The first CPU reading primes psutil, so it is taken at construction."""

    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        psutil.cpu_percent(interval=None)

    def __call__(self) -> SystemStats:
        return SystemStats(
            cpu_percent=psutil.cpu_percent(interval=None),
            mem_percent=psutil.virtual_memory().percent,
            disk_free=self._disk_free(),
            temperature=cpu_temperature(),
        )

    def _disk_free(self) -> int | None:
        path = Path(self.disk_path).absolute()
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            return psutil.disk_usage(str(path)).free
        except OSError:
            return None


def cpu_temperature() -> float | None:
    """The CPU temperature where a sensor exists (a Pi's cpu_thermal, a PC's coretemp...), else None."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        sensors = reader()
    except (OSError, RuntimeError):
        return None
    if not sensors:
        return None
    for name in TEMPERATURE_SENSORS + tuple(sensors):
        for entry in sensors.get(name, ()):
            if entry.current is not None and entry.current > 0:
                return float(entry.current)
    return None
