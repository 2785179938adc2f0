"""Boot schedules: once per boot of the machine (not per daemon restart), that long after it.

The trigger is told the boot (its time, as data) and whether the job already ran in this boot
(the engine keeps the kernel's boot id of each boot job's last scheduled run in the state). As
systemd's OnBootSec=, a daemon that starts after the due time runs the job at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from insect_console.triggers.base import utc


@dataclass(frozen=True)
class BootTrigger:
    delay: dt.timedelta
    booted: dt.datetime
    """When this boot happened (aware)."""
    done: bool = False
    """True when the job already ran in this boot."""

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        previous, now = utc(previous), utc(now)
        due = utc(self.booted) + self.delay
        if self.done or (previous is not None and previous >= due):
            return None
        return max(due, now)

    def moved(self, delta: dt.timedelta) -> "BootTrigger":
        return replace(self, booted=self.booted + delta)  # the boot was that long ago in elapsed time
