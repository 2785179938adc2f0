"""The trigger interface (triggers/base.py) and the spec's three types as triggers.

Triggers are pure: every test here gives them two datetimes and checks the answer, with no
clock and no engine. Expected times are computed independently (zoneinfo walked minute by
minute, plain datetime arithmetic), never taken from our own output.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from insect_console.triggers import IntervalTrigger, Site, aware, due_times, naive_local
from insect_console.triggers.base import at_wall
from insect_console.triggers.fixed import FixedTimeTrigger

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
SPRING, AUTUMN = dt.date(2026, 3, 29), dt.date(2026, 10, 25)  # the EU's DST changes in 2026


def exists(naive: dt.datetime, zone: dt.tzinfo) -> bool:
    t = naive.replace(tzinfo=zone)
    return t.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


def first_existing(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The first wall time at or after `naive` that exists in `zone`, walked a minute at a time
    from the top of its minute (the independent reference for the spring-forward rule)."""
    if exists(naive, zone):
        return naive.replace(tzinfo=zone, fold=0)
    t = naive.replace(second=0, microsecond=0)
    while not exists(t, zone):
        t += dt.timedelta(minutes=1)
    return t.replace(tzinfo=zone)


# -- the interface ----------------------------------------------------------------------------

def test_interval_next_fire_is_strictly_after_previous_and_not_before_now():
    t0 = dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    trig = IntervalTrigger(dt.timedelta(minutes=1), t0)
    assert trig.next_fire(None, t0) == t0                                     # not before now: now itself
    assert trig.next_fire(t0, t0) == t0 + dt.timedelta(minutes=1)             # strictly after previous
    assert trig.next_fire(t0, t0 + dt.timedelta(minutes=5, seconds=30)) == t0 + dt.timedelta(minutes=6)  # missed ones skipped
    assert trig.next_fire(None, t0 - dt.timedelta(seconds=90)) == t0 - dt.timedelta(minutes=1)  # the grid runs both ways
    assert trig.moved(dt.timedelta(hours=2)).next_fire(None, t0) == t0        # moved by whole periods: same grid
    assert trig.moved(dt.timedelta(seconds=20)).next_fire(None, t0) == t0 + dt.timedelta(seconds=20)


def test_due_times_lists_every_due_time_in_the_half_open_span():
    t0 = dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    trig = IntervalTrigger(dt.timedelta(minutes=15), t0)
    got = list(due_times(trig, t0, t0 + dt.timedelta(hours=1)))
    assert got == [t0 + dt.timedelta(minutes=15 * k) for k in range(1, 5)]    # (after, until]: 10:00 no, 11:00 yes
    assert list(due_times(trig, t0, t0)) == []


def test_due_times_of_a_daily_trigger_over_a_week_off():
    trig = FixedTimeTrigger("02:00:00", BERLIN)
    after = dt.datetime(2026, 5, 3, 21, 0, tzinfo=BERLIN)
    got = list(due_times(trig, after, after + dt.timedelta(days=7)))
    assert got == [dt.datetime(2026, 5, d, 2, 0, tzinfo=BERLIN) for d in range(4, 11)]


def test_a_broken_trigger_cannot_make_due_times_loop():
    class Stuck:
        def next_fire(self, previous, now):
            return now

    t0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        list(due_times(Stuck(), t0, t0 + dt.timedelta(days=1)))


def test_naive_local_and_aware_round_trip():
    t = dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert aware(naive_local(t)) == t
    assert aware(dt.datetime(2026, 1, 1, 12, 0)) == dt.datetime(2026, 1, 1, 12, 0).astimezone(UTC)


def test_site_defaults_to_the_system_zone():
    local = dt.datetime(2026, 7, 1, 12, 0).astimezone()
    assert dt.datetime(2026, 7, 1, 12, 0, tzinfo=Site().zone).utcoffset() == local.utcoffset()


# -- the DST rule ------------------------------------------------------------------------------

@pytest.mark.parametrize("hhmm", ["02:00", "02:30", "02:59", "02:30:15"])
def test_a_wall_time_skipped_in_spring_is_due_at_the_first_minute_that_exists(hhmm):
    parts = [int(x) for x in hhmm.split(":")]
    naive = dt.datetime(2026, 3, 29, *parts)
    assert at_wall(naive, BERLIN) == first_existing(naive, BERLIN) == dt.datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)


def test_a_wall_time_repeated_in_autumn_is_its_first_occurrence():
    got = at_wall(dt.datetime(2026, 10, 25, 2, 30), BERLIN)
    assert got.astimezone(UTC) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)   # 02:30 CEST, not CET


# -- daily and weekly, a year in Berlin ------------------------------------------------------------

@pytest.mark.parametrize("at", ["02:30:00", "00:00:00", "23:59:59", "12:00:00"])
def test_daily_over_a_year_in_berlin_once_a_day_on_the_local_clock(at):
    hh, mm, ss = (int(x) for x in at.split(":"))
    trig = FixedTimeTrigger(at, BERLIN)
    start = dt.datetime(2026, 1, 1, tzinfo=BERLIN)
    got = list(due_times(trig, start, start + dt.timedelta(days=365)))
    expected = [first_existing(dt.datetime.combine(start.date() + dt.timedelta(days=i), dt.time(hh, mm, ss)), BERLIN) for i in range(366)]
    expected = [t.astimezone(UTC) for t in expected if start < t <= start + dt.timedelta(days=365)]
    assert got == expected  # in UTC: a time in a repeated hour never equals one in another zone
    assert len({t.astimezone(BERLIN).date() for t in got}) == len(got)       # never twice a day, not on the autumn day either


def test_daily_asked_during_the_repeated_hour_second_pass_waits_for_tomorrow():
    trig = FixedTimeTrigger("02:30:00", BERLIN)
    second_pass = dt.datetime(2026, 10, 25, 1, 40, tzinfo=UTC)                 # 02:40 CET, after 02:30 CEST ran
    assert trig.next_fire(None, second_pass) == dt.datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN)
    first = dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert trig.next_fire(first, first) == dt.datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN)


def test_weekly_over_a_year_in_berlin():
    trig = FixedTimeTrigger("02:30:00", BERLIN, weekday="sunday")             # both 2026 DST changes are on Sundays
    start = dt.datetime(2026, 1, 1, tzinfo=BERLIN)
    got = list(due_times(trig, start, start + dt.timedelta(days=365)))
    sundays = [start.date() + dt.timedelta(days=i) for i in range(366) if (start.date() + dt.timedelta(days=i)).weekday() == 6]
    expected = [first_existing(dt.datetime.combine(d, dt.time(2, 30)), BERLIN) for d in sundays]
    assert got == [t.astimezone(UTC) for t in expected if t <= start + dt.timedelta(days=365)]
    assert dt.datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN) in got
