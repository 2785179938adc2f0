"""The schedule types beyond the spec's three: cron, sun, windows, boot, jitter; and DST.

Each is a pure trigger, checked across a year at two places: Berlin (52.5°N 13.4°E,
Europe/Berlin) and Tromsø (69.6°N 18.9°E, Europe/Oslo: midnight sun and polar night), over
both DST changes. Expected times are computed independently: cronsim iterated on its own,
astral called directly, zoneinfo walked minute by minute; never taken from our own output.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import astral
import pytest
from astral import sun as astral_sun
from cronsim import CronSim

from helpers import job
from insect_console.clock import ManualClock
from insect_console.jobs import make_job
from insect_console.scheduling import JobScheduler, preview
from insect_console.triggers import Boot, Site, due_times, first_due, naive_local
from insect_console.triggers.boot import BootTrigger

UTC = dt.timezone.utc
BERLIN = Site(ZoneInfo("Europe/Berlin"), 52.5, 13.4, 0.0, seed="station-a")
TROMSO = Site(ZoneInfo("Europe/Oslo"), 69.6, 18.9, 0.0, seed="station-b")
PLACES = pytest.mark.parametrize("site", [BERLIN, TROMSO], ids=["berlin", "tromso"])
YEAR = 2026


def year_span(site: Site) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime(YEAR, 1, 1, tzinfo=site.zone), dt.datetime(YEAR + 1, 1, 1, tzinfo=site.zone)


def trigger_of(site: Site, kind: str, when: str, **extra):
    parsed = make_job(job("j", "true", kind, when, **extra)).when
    start = year_span(site)[0]
    return first_due(parsed, site, start, name="j")[0]


def days(site: Site):
    d = dt.date(YEAR, 1, 1)
    while d.year == YEAR:
        yield d
        d += dt.timedelta(days=1)


def first_existing(naive: dt.datetime, zone) -> dt.datetime:
    """The first wall time at or after `naive` that exists in `zone`, a minute at a time."""
    def exists(t):
        return t.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == t
    t = naive
    while not exists(t):
        t = t.replace(second=0) + dt.timedelta(minutes=1)
    return t.replace(tzinfo=zone, fold=0)


def observer(site: Site) -> astral.Observer:
    return astral.Observer(site.latitude, site.longitude, site.elevation)


def astral_event(site: Site, name: str, day: dt.date) -> dt.datetime | None:
    """astral called directly (in UTC, so adding an offset counts elapsed time, as a
    trigger's does); None on a day the event does not happen."""
    fn = {"sunrise": astral_sun.sunrise, "sunset": astral_sun.sunset, "noon": astral_sun.noon}.get(name)
    try:
        if fn is not None:
            return fn(observer(site), day, site.zone).astimezone(UTC)
        depression = {"dawn": 6, "dusk": 6, "nautical_dawn": 12, "nautical_dusk": 12, "astronomical_dawn": 18, "astronomical_dusk": 18}[name]
        return (astral_sun.dawn if name.endswith("dawn") else astral_sun.dusk)(observer(site), day, depression, site.zone).astimezone(UTC)
    except ValueError:
        return None


# -- cron ----------------------------------------------------------------------------------------

@PLACES
@pytest.mark.parametrize("expr", ["*/10 5-21 * * 1-5", "30 2 * * *", "0 3 * * 0", "15 */6 1,15 * *", "@hourly", "@weekly"])
def test_cron_over_a_year_matches_cronsims_own_iteration(site, expr):
    start, end = year_span(site)
    got = list(due_times(trigger_of(site, "cron", expr), start, end))
    fields = {"@hourly": "0 * * * *", "@weekly": "0 0 * * 0"}.get(expr, expr)
    expected = []
    for t in CronSim(fields, start):
        if t > end:
            break
        expected.append(t.astimezone(UTC))  # in UTC: a time in a repeated hour never equals one in another zone
    assert got == expected and got


def test_cron_at_a_time_skipped_in_spring_runs_once_at_the_first_minute_after_it():
    trig = trigger_of(BERLIN, "cron", "30 2 * * *")
    zone = BERLIN.zone
    got = list(due_times(trig, dt.datetime(2026, 3, 27, tzinfo=zone), dt.datetime(2026, 3, 31, tzinfo=zone)))
    assert got == [first_existing(dt.datetime(2026, 3, d, 2, 30), zone).astimezone(UTC) for d in (27, 28, 29, 30)]
    assert got[2] == dt.datetime(2026, 3, 29, 3, 0, tzinfo=zone)


def test_cron_at_a_time_in_the_repeated_autumn_hour_runs_once():
    trig = trigger_of(BERLIN, "cron", "30 2 * * *")
    zone = BERLIN.zone
    got = list(due_times(trig, dt.datetime(2026, 10, 24, 12, tzinfo=zone), dt.datetime(2026, 10, 26, 12, tzinfo=zone)))
    assert [t.astimezone(UTC) for t in got] == [dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC), dt.datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]


# -- sun -------------------------------------------------------------------------------------------

@PLACES
@pytest.mark.parametrize("spec, event, offset", [("sunset+00:30", "sunset", 1800), ("dawn-15m", "dawn", -900), ("sunrise", "sunrise", 0),
                                                  ("noon+1h", "noon", 3600), ("nautical_dusk", "nautical_dusk", 0),
                                                  ("astronomical_dawn-2h", "astronomical_dawn", -7200)])
def test_sun_over_a_year_matches_astral_called_directly(site, spec, event, offset):
    start, end = year_span(site)
    got = list(due_times(trigger_of(site, "sun", spec), start, end))
    expected = [t.astimezone(UTC) + dt.timedelta(seconds=offset) for d in days(site) if (t := astral_event(site, event, d)) is not None]
    expected = [t for t in expected if start < t <= end]
    assert got == expected


def test_tromso_has_no_sunset_in_the_midnight_sun_and_no_sunrise_in_the_polar_night():
    start, end = year_span(TROMSO)
    sunsets = {t.astimezone(TROMSO.zone).date() for t in due_times(trigger_of(TROMSO, "sun", "sunset"), start, end)}
    sunrises = {t.astimezone(TROMSO.zone).date() for t in due_times(trigger_of(TROMSO, "sun", "sunrise"), start, end)}
    assert dt.date(2026, 6, 21) not in sunsets and dt.date(2026, 12, 21) not in sunrises
    assert 230 < len(sunsets) < 270                                   # two months of midnight sun, seven weeks of polar night
    assert astral_event(TROMSO, "sunset", dt.date(2026, 6, 21)) is None  # the reference agrees


def test_the_preview_says_why_days_are_skipped():
    clock = ManualClock(naive_local(dt.datetime(2026, 6, 1, 12, tzinfo=TROMSO.zone)))
    p = preview(make_job(job("moths", "true", "sun", "sunset+30m")), clock, count=2, site=TROMSO)
    assert p.times[0].astimezone(TROMSO.zone).date() > dt.date(2026, 7, 20)
    assert any(s.startswith("no sunset from 2026-06-01 to 2026-07-") and "69.6°N 18.9°E" in s for s in p.skipped), p.skipped
    day = (p.times[0] - dt.timedelta(minutes=30)).astimezone(TROMSO.zone).date()  # the sunset may be before midnight, its run after
    sunset = astral_event(TROMSO, "sunset", day)
    sunset = sunset.astimezone(TROMSO.zone)
    assert p.notes[0] == f"sunset {sunset:%H:%M:%S} on {sunset:%Y-%m-%d}, +30m"


# -- windows ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("site", [BERLIN, TROMSO], ids=["berlin", "tromso"])
def test_interval_in_a_window_across_midnight_over_a_year(site):
    start, end = year_span(site)
    got = list(due_times(trigger_of(site, "interval", "10m", window="21:00..05:00"), start, end))
    expected = []
    for d in [dt.date(YEAR - 1, 12, 31), *days(site)]:
        opening = first_existing(dt.datetime.combine(d, dt.time(21, 0)), site.zone)
        closing = first_existing(dt.datetime.combine(d + dt.timedelta(days=1), dt.time(5, 0)), site.zone)
        t = opening.astimezone(UTC)
        while t < closing:
            if start < t <= end:
                expected.append(t.astimezone(UTC))  # in UTC: a time in a repeated hour never equals one in another zone
            t += dt.timedelta(minutes=10)                                   # elapsed time: 8 h of runs, 7 h or 9 h on DST nights
    assert got == expected
    nights = {}
    for t in got:
        key = (t - dt.timedelta(hours=12)).astimezone(site.zone).date()
        nights[key] = nights.get(key, 0) + 1
    assert nights[dt.date(2026, 3, 28)] == 7 * 6 and nights[dt.date(2026, 10, 24)] == 9 * 6 and nights[dt.date(2026, 7, 1)] == 8 * 6


@PLACES
def test_sun_window_over_a_year_matches_astral(site):
    start, end = year_span(site)
    got = list(due_times(trigger_of(site, "interval", "1h", window="sunset+30m..sunrise-1h"), start, end))
    expected = []
    for d in [dt.date(YEAR - 1, 12, 31), *days(site)]:
        sunset = astral_event(site, "sunset", d)
        if sunset is None:
            continue
        opening = sunset + dt.timedelta(minutes=30)
        sunrise = astral_event(site, "sunrise", d)
        closing = sunrise - dt.timedelta(hours=1) if sunrise is not None else None
        if closing is None or closing <= opening:
            sunrise = astral_event(site, "sunrise", d + dt.timedelta(days=1))
            closing = sunrise - dt.timedelta(hours=1) if sunrise is not None else None
        if closing is None or closing <= opening:
            continue
        t = opening.astimezone(UTC)
        while t < closing:
            if start < t <= end:
                expected.append(t)
            t += dt.timedelta(hours=1)
    assert got == expected and got


def test_cron_in_a_window_runs_at_its_own_times_inside_it():
    site = BERLIN
    start, end = dt.datetime(2026, 3, 27, tzinfo=site.zone), dt.datetime(2026, 4, 3, tzinfo=site.zone)
    got = list(due_times(trigger_of(site, "cron", "*/20 * * * *", window="22:30..01:10"), start, end))
    expected = []
    for t in CronSim("*/20 * * * *", start):
        if t > end:
            break
        w = t.astimezone(site.zone).time()
        if w >= dt.time(22, 30) or w < dt.time(1, 10):
            expected.append(t.astimezone(UTC))
    assert got == expected


def test_outside_the_window_the_next_run_is_the_next_opening():
    trig = trigger_of(BERLIN, "interval", "10m", window="sunset+30m..sunrise-1h")
    noon = dt.datetime(2026, 5, 10, 12, 0, tzinfo=BERLIN.zone)
    sunset = astral_event(BERLIN, "sunset", noon.date())
    assert trig.next_fire(None, noon) == sunset + dt.timedelta(minutes=30)


# -- boot ---------------------------------------------------------------------------------------

def test_boot_trigger_is_due_once_that_long_after_boot():
    booted = dt.datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    trig = BootTrigger(dt.timedelta(minutes=5), booted)
    assert trig.next_fire(None, booted + dt.timedelta(seconds=20)) == booted + dt.timedelta(minutes=5)
    assert trig.next_fire(booted + dt.timedelta(minutes=5), booted + dt.timedelta(minutes=5)) is None    # once
    assert trig.next_fire(None, booted + dt.timedelta(hours=2)) == booted + dt.timedelta(hours=2)        # started late: at once
    assert BootTrigger(dt.timedelta(minutes=5), booted, done=True).next_fire(None, booted) is None        # already ran this boot
    assert list(due_times(trig, booted, booted + dt.timedelta(days=3))) == [booted + dt.timedelta(minutes=5)]


def test_boot_jobs_run_once_per_boot_not_per_scheduler_restart():
    boot = Boot("boot-1", dt.datetime(2026, 5, 1, 6, 0, tzinfo=UTC))
    clock = ManualClock(naive_local(boot.at + dt.timedelta(seconds=30)))
    jobs = [make_job(job("wake", "true", "boot", "5m"))]
    s = JobScheduler(clock, Site(BERLIN.zone, boot=boot))
    s.sync(jobs)
    assert s.next_run("wake") == naive_local(boot.at + dt.timedelta(minutes=5))
    clock.set(s.next_run("wake"))
    assert s.due() == ["wake"] and s.next_run("wake") is None and s.ran_this_boot() == ["wake"]
    restarted = JobScheduler(clock, Site(BERLIN.zone, boot=boot))
    restarted.sync(jobs, done_this_boot=["wake"])                            # what the state says for boot-1
    assert restarted.next_run("wake") is None
    rebooted = Boot("boot-2", dt.datetime(2026, 5, 2, 6, 0, tzinfo=UTC))
    clock.set(naive_local(rebooted.at + dt.timedelta(seconds=10)))
    after_reboot = JobScheduler(clock, Site(BERLIN.zone, boot=rebooted))
    after_reboot.sync(jobs, done_this_boot=[])                               # the state's boot id is another boot's
    assert after_reboot.next_run("wake") == naive_local(rebooted.at + dt.timedelta(minutes=5))


# -- jitter ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, when", [("daily", "03:00"), ("cron", "*/15 * * * *"), ("sun", "sunrise"), ("interval", "1h")])
def test_jitter_delays_each_due_time_by_less_than_the_jitter(kind, when):
    """Bounds: every fire time f belongs to exactly one due time b of the same schedule without
    jitter, with b ≤ f < b + jitter; the delays are spread over the range, and differ per station."""
    site = BERLIN
    start = dt.datetime(2026, 3, 1, tzinfo=site.zone)
    end = start + (dt.timedelta(days=3) if kind in ("cron", "interval") else dt.timedelta(days=120))
    jitter = dt.timedelta(minutes=5)
    plain = list(due_times(trigger_of(site, kind, when), start - jitter, end))
    jittered_trigger = trigger_of(site, kind, when, jitter="5m")
    fired = list(due_times(jittered_trigger, start, end))
    bases = [max(b for b in plain if b <= f) for f in fired]                 # the due time each fire time delays
    delays = [(f - b).total_seconds() for b, f in zip(bases, fired)]
    assert all(0 <= d < 300 for d in delays), (min(delays), max(delays))
    assert len(set(bases)) == len(bases)                                      # one fire time per due time...
    assert set(bases) >= {b for b in plain if start < b and b + jitter <= end}  # ...and every due time fired
    assert max(delays) > 200 and min(delays) < 100                          # spread, not one fixed delay
    assert list(due_times(jittered_trigger, start, end)) == list(due_times(jittered_trigger, start, end))  # pure: the same twice
    other = trigger_of(Site(site.zone, site.latitude, site.longitude, seed="station-c"), kind, when, jitter="5m")
    assert list(due_times(other, start, end))[:20] != fired[:20]


def test_jitter_larger_than_the_period_keeps_every_run_in_order():
    trig = trigger_of(BERLIN, "interval", "1m", jitter="5m")
    start = dt.datetime(2026, 6, 1, tzinfo=UTC)
    fired = list(due_times(trig, start, start + dt.timedelta(hours=2)))
    assert fired == sorted(fired) and len(set(fired)) == len(fired)
    assert 115 <= len(fired) <= 125  # 120 due times, give or take those 5 min before either end


# -- DST and intervals ------------------------------------------------------------------------------

@pytest.mark.parametrize("day", [dt.date(2026, 3, 29), dt.date(2026, 10, 25)])
def test_interval_grids_count_elapsed_time_over_a_dst_change(day):
    trig = trigger_of(BERLIN, "interval", "30m")
    start = dt.datetime.combine(day, dt.time(0, 0), BERLIN.zone).astimezone(UTC)  # + 5 h below: elapsed, not on the wall clock
    got = list(due_times(trig, start, start + dt.timedelta(hours=5)))
    assert all(b - a == dt.timedelta(minutes=30) for a, b in zip(got, got[1:])) and len(got) == 10


# -- the clock-jump rule for every type ----------------------------------------------------------------

TYPES = [("cron", "0 2 * * *", {}), ("sun", "sunrise", {}), ("interval", "1h", {"window": "01:00..05:00"}), ("daily", "02:00", {"jitter": "5m"})]


@pytest.mark.parametrize("kind, when, extra", TYPES, ids=[t[0] + ("+" + next(iter(t[2])) if t[2] else "") for t in TYPES])
def test_every_fixed_type_keeps_the_clock_jump_rule(kind, when, extra):
    site = Site(UTC, 52.5, 13.4, seed="s")
    j = make_job(job("j", "true", kind, when, **extra))
    clock = ManualClock(dt.datetime(2026, 5, 10, 0, 0))
    s = JobScheduler(clock, site)
    s.sync([j])
    due = s.next_run("j")
    clock.set(due - dt.timedelta(minutes=30))
    # forward by less than 3 h over the due time: it runs once
    clock.set(due + dt.timedelta(hours=1, minutes=7))
    s.on_clock_jump(5820)
    assert s.due() == ["j"] and s.due() == []
    # back by an hour: what ran does not run again
    after = s.next_run("j")
    clock.set(clock.now() - dt.timedelta(hours=1))
    s.on_clock_jump(-3600)
    assert s.next_run("j") == after and s.due() == []
    # forward by a day: reset to the next time on the new clock, no catch-up
    clock.set(clock.now() + dt.timedelta(days=1, minutes=7))
    s.on_clock_jump(86400 + 420)
    assert s.due() == [] and s.next_run("j") > clock.now()
