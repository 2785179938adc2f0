"""Jitter: a random delay in [0, jitter) on each due time (systemd's RandomizedDelaySec=), so
twenty stations with the same config do not all upload at 03:00:00.

The delay of a due time is a hash of the station's seed (its machine id), the job's name and
the due time, so the trigger stays pure: asked twice, it answers the same, and a restarted
daemon keeps the delays it had (a job that ran at 03:02:17 does not run again at 03:04:40).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace

from insect_console.triggers.base import Movable, Trigger, utc


@dataclass(frozen=True)
class JitterTrigger:
    inner: Trigger
    jitter: dt.timedelta
    key: str
    """The seed and the job's name: what makes each station's and job's delays its own."""

    def delay(self, due: dt.datetime) -> dt.timedelta:
        """This due time's delay, in whole milliseconds in [0, jitter)."""
        digest = hashlib.blake2b(f"{self.key}|{due.timestamp():.6f}".encode(), digest_size=8).digest()
        span = max(1, int(self.jitter / dt.timedelta(milliseconds=1)))
        return dt.timedelta(milliseconds=int.from_bytes(digest, "big") % span)

    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        # a due time b fires at b + delay(b), within [b, b + jitter): look at the inner due times
        # from `jitter` before the bounds on, and keep the earliest fire time that meets them
        previous, now = utc(previous), utc(now)
        best = None
        base = self.inner.next_fire(previous - self.jitter if previous is not None else None, now - self.jitter)
        for _ in range(100_000):
            if base is None or (best is not None and base >= best):
                return best
            fire = base + self.delay(base)
            if fire >= now and (previous is None or fire > previous) and (best is None or fire < best):
                best = fire
            base = self.inner.next_fire(base, base)
        return best


    def base_of(self, fire: dt.datetime) -> dt.datetime | None:
        """The inner due time that `fire` is the delayed form of."""
        fire = utc(fire)
        base = self.inner.next_fire(None, fire - self.jitter)
        while base is not None and base <= fire:
            if base + self.delay(base) == fire:
                return base
            base = self.inner.next_fire(base, base)
        return None


@dataclass(frozen=True)
class MovableJitterTrigger(JitterTrigger):
    """Jitter on an interval or boot trigger: it moves with a clock jump as its inner one does."""

    def moved(self, delta: dt.timedelta) -> "MovableJitterTrigger":
        assert isinstance(self.inner, Movable)
        return replace(self, inner=self.inner.moved(delta))


def jittered(inner: Trigger, jitter: dt.timedelta, key: str) -> JitterTrigger:
    return (MovableJitterTrigger if isinstance(inner, Movable) else JitterTrigger)(inner, jitter, key)
