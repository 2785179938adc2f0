"""The trigger interface, after APScheduler 3's `get_next_fire_time(previous, now)`.

A trigger is a schedule as a pure function: given the previous due time and now, it returns
the next due time. It holds no thread, does no I/O and never reads a clock: the scheduler asks
it, and a test asks it with any two datetimes it likes. Everything a trigger needs besides the
schedule itself (the time zone, the station's place, the boot time) is given to it as data.

Times are aware datetimes; triggers answer in UTC (and take any zone): two aware times in the
same zone compare by their wall clocks, which is wrong in an autumn night's repeated hour. The engine's clock is naive local system time (what the spec's
`schedule` library uses), so the scheduler converts at its edge with `aware()` and
`naive_local()`; triggers compute in the station's zone (`Site.zone`), where the local
clock's DST rules live. That keeps a DST change out of the engine's clock-jump check and
makes the DST rule one function here (`at_wall`), used by every fixed-time type.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterator, Protocol, runtime_checkable

UTC = dt.timezone.utc


@runtime_checkable
class Trigger(Protocol):
    def next_fire(self, previous: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        """The earliest due time strictly after `previous` (None: never fired) and not before
        `now`, as an aware datetime; None when there is none (ever again)."""


@runtime_checkable
class Movable(Protocol):
    """A trigger whose due times count elapsed time (an interval's grid, the time after boot).

    When the wall clock jumps, the scheduler moves such a trigger with it, so its spacing is
    kept; fixed-time triggers (daily, cron, the sun...) stay on the local clock instead.
    """

    def moved(self, delta: dt.timedelta) -> Trigger:
        """The same trigger with every due time `delta` later."""


def utc(when: dt.datetime | None) -> dt.datetime | None:
    """An aware time in UTC (None stays None)."""
    return None if when is None else when.astimezone(UTC)


def due_times(trigger: Trigger, after: dt.datetime, until: dt.datetime, limit: int = 100_000) -> Iterator[dt.datetime]:
    """Every due time of `trigger` in (`after`, `until`], earliest first (for catching up runs
    missed while the station was off). Stops after `limit` times."""
    previous, until = utc(after), utc(until)
    for _ in range(limit):
        when = trigger.next_fire(previous, previous)
        if when is None or when > until:
            return
        if when <= previous:  # a broken trigger must not loop forever
            raise ValueError(f"{trigger!r} returned {when} for a previous due time of {previous}")
        yield when
        previous = when


@dataclass(frozen=True)
class Boot:
    """This boot of the machine: the kernel's boot id and when it booted (aware)."""

    id: str
    at: dt.datetime


@dataclass(frozen=True)
class Site:
    """What triggers need to know about the station besides the schedule: data, never I/O.

    `zone` is the station's time zone (settings.timezone, else the system's); `latitude`,
    `longitude` (degrees) and `elevation` (metres) place it for the sun; `boot` is this boot of
    the machine; `seed` makes one station's jitter differ from another's (the machine id)."""

    zone: dt.tzinfo = field(default_factory=lambda: system_zone())
    latitude: float | None = None
    longitude: float | None = None
    elevation: float = 0.0
    boot: Boot | None = None
    seed: str = ""

    @property
    def place(self) -> str:
        """ "78.2°N 15.6°E", for saying why a day has no sunset."""
        lat, lon = self.latitude or 0.0, self.longitude or 0.0
        return f"{abs(lat):.1f}°{'N' if lat >= 0 else 'S'} {abs(lon):.1f}°{'E' if lon >= 0 else 'W'}"


def system_zone() -> dt.tzinfo:
    """The system's time zone with its DST rules (a ZoneInfo, from TZ or /etc/localtime)."""
    import tzlocal  # imported when first needed: `list` of interval jobs stays light

    try:
        return tzlocal.get_localzone()
    except Exception:  # an unreadable or odd local zone: UTC, as the system's own clock falls back
        return UTC


def zone_named(name: str) -> dt.tzinfo:
    """settings.timezone as a zone: an IANA name, or "" for the system's."""
    if not name.strip():
        return system_zone()
    import zoneinfo

    from insect_console.errors import ValidationError

    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("settings.timezone", f"{name!r} is not a time zone; use an IANA name such as Europe/Berlin "
                              "(timedatectl list-timezones), or \"\" for the system's") from None


def aware(naive_local: dt.datetime) -> dt.datetime:
    """The engine's naive local time (fold respected) as an aware UTC time."""
    return naive_local.astimezone(UTC)


def naive_local(when: dt.datetime) -> dt.datetime:
    """An aware time as the engine's naive local system time; `fold` marks the second pass of
    a repeated hour, so `aware()` gives the same instant back."""
    naive = when.astimezone().replace(tzinfo=None)
    if naive.astimezone(UTC) != when:
        naive = naive.replace(fold=1)
    return naive


def wall(when: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The wall-clock reading of `when` in `zone`, naive (through UTC: `astimezone` to a
    datetime's own zone would return it unchanged, even a time that does not exist)."""
    return when.astimezone(UTC).astimezone(zone).replace(tzinfo=None)


def at_wall(naive_wall: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant the clock in `zone` shows `naive_wall` (the DST rule of every fixed time).

    - a time inside the hour skipped in spring is due at the first moment that exists after
      it (the end of the gap: 02:30 on that day is due at 03:00);
    - a time inside the hour repeated in autumn is due once, at its first occurrence.
    """
    first = naive_wall.replace(tzinfo=zone, fold=0)
    if wall(first, zone) == naive_wall.replace(fold=0):
        return first  # exists (the first of two, in a repeated hour)
    # in a gap: fold=0 gives the instant past the gap, fold=1 one before it; the gap's end lies
    # between, where the UTC offset changes: found to the microsecond by bisection
    lo = naive_wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first.astimezone(UTC)
    after = hi.astimezone(zone).utcoffset()  # the offset past the gap
    while hi - lo > dt.timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == after:  # mid is UTC here: a real conversion
            hi = mid
        else:
            lo = mid
    return hi.astimezone(zone)
