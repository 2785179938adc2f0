"""The new schedule types on the command line: add/edit, `next`, `list` and `list --json`, and
`cron` (what cron can express exactly is printed as is; the rest is refused with the reason)."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import tomllib

import pytest
from astral import Observer
from astral import sun as astral_sun
from zoneinfo import ZoneInfo

from forkserver import cli_forked
from helpers import PY, assert_one_line_error, job, write_config

PLACE = {"latitude": 52.5, "longitude": 13.4, "timezone": "Europe/Berlin"}


@pytest.fixture
def station(tmp_path):
    return write_config(tmp_path, [job("a", "echo a")], settings=PLACE)


def jobs_of(path):
    return {j["name"]: j for j in tomllib.loads(path.read_text())["jobs"]}


def test_add_every_new_type_and_list_them_in_words(tmp_path, station):
    for args in [("moths", "echo m", "--type", "sun", "--time", "sunset+00:30"),
                 ("traps", "echo t", "--type", "interval", "--time", "10m", "--window", "sunset+30m..sunrise-1h"),
                 ("weekdays", "echo w", "--type", "cron", "--time", "*/10 5-21 * * 1-5"),
                 ("wake", "echo w", "--type", "boot", "--time", "5m"),
                 ("upload", "echo u", "--type", "daily", "--time", "03:00", "--jitter", "5m")]:
        done = cli_forked(tmp_path, "add", *args)
        assert done.returncode == 0, done.stderr
    saved = jobs_of(station)
    assert saved["traps"]["window"] == "sunset+30m..sunrise-1h" and saved["upload"]["jitter"] == "5m"
    listed = cli_forked(tmp_path, "list").stdout
    for words in ("daily sunset+30m", "every 10m, sunset+30m to sunrise−1h", "every 10th minute from 05:00 through 21:59 on Monday through Friday",
                  "5m after boot", "daily 03:00, +≤5m random"):
        assert words in listed, listed
    status = {s["name"]: s for s in json.loads(cli_forked(tmp_path, "list", "--json").stdout)}
    assert status["moths"]["sun"] == {"event": "sunset", "offset_s": 1800}
    assert status["traps"]["interval"] == {"seconds": 600} and status["traps"]["window"] == {"start": "sunset+30m", "end": "sunrise-1h"}
    assert status["weekdays"]["cron"] == {"expression": "*/10 5-21 * * 1-5", "fields": "*/10 5-21 * * 1-5"}
    assert status["wake"]["boot"] == {"delay_s": 300} and status["upload"]["jitter_s"] == 300
    assert all(status[n]["next_run"] for n in ("moths", "traps", "weekdays", "upload"))


def test_edit_sets_and_clears_a_window_and_a_jitter(tmp_path, station):
    assert cli_forked(tmp_path, "edit", "a", "--window", "21:00..05:00", "--jitter", "90s").returncode == 0
    assert (jobs_of(station)["a"]["window"], jobs_of(station)["a"]["jitter"]) == ("21:00..05:00", "90s")
    assert cli_forked(tmp_path, "edit", "a", "--window", "", "--jitter", "").returncode == 0
    assert "window" not in jobs_of(station)["a"] and "jitter" not in jobs_of(station)["a"]
    assert cli_forked(tmp_path, "edit", "a", "--type", "cron", "--time", "@hourly").returncode == 0
    assert jobs_of(station)["a"]["schedule_time"] == "@hourly"


@pytest.mark.parametrize("args, needles", [
    (("--type", "cron", "--time", "61 * * * *"), ("schedule_time", "bad minute", "5 fields")),
    (("--type", "cron", "--time", "* * * *"), ("schedule_time", "4 fields")),
    (("--type", "sun", "--time", "moonrise"), ("schedule_time", "sun event", "sunset+00:30")),
    (("--type", "sun", "--time", "sunset+13h"), ("schedule_time", "over 12h")),
    (("--type", "interval", "--time", "1m", "--window", "21:00..21:00"), ("window", "starts where it ends")),
    (("--type", "daily", "--time", "02:00", "--window", "21:00..05:00"), ("window", "only interval and cron")),
    (("--type", "interval", "--time", "1m", "--jitter", "13h"), ("jitter", "too long")),
    (("--type", "boot", "--time", "2d"), ("schedule_time", "after boot")),
    (("--type", "cron", "--time", "@reboot"), ("schedule_time", "boot")),
], ids=["cron-field", "cron-fields", "sun-event", "sun-offset", "window-equal", "window-daily", "jitter", "boot", "reboot"])
def test_add_errors_are_one_line_naming_the_field(tmp_path, station, args, needles):
    before = station.read_bytes()
    assert_one_line_error(cli_forked(tmp_path, "add", "x", "true", *args), *needles)
    assert station.read_bytes() == before


def test_a_sun_job_without_the_stations_place_is_one_line(tmp_path):
    cfg = write_config(tmp_path, [job("a", "echo a")])
    assert_one_line_error(cli_forked(tmp_path, "add", "m", "true", "--type", "sun", "--time", "sunset"), "latitude and longitude")
    # by hand, as a person adds one (tomli_w would write the jobs inline, with no line to name)
    cfg.write_text('[[jobs]]\nname = "a"\ncommand = "true"\nschedule_type = "interval"\nschedule_time = "1m"\n\n'
                   '[[jobs]]\nname = "m"\ncommand = "true"\nschedule_type = "interval"\nschedule_time = "1m"\nwindow = "dusk..dawn"\n')
    assert_one_line_error(cli_forked(tmp_path, "list"), "job #2 (m)", "window", "latitude")


@pytest.mark.parametrize("settings, needle", [({"latitude": 91, "longitude": 0}, "settings.latitude"),
                                              ({"timezone": "Europe/Berln"}, "settings.timezone"),
                                              ({"longitude": "east"}, "settings.longitude")])
def test_bad_place_settings_are_one_line(tmp_path, settings, needle):
    write_config(tmp_path, [job("a", "echo a")], settings=settings)
    assert_one_line_error(cli_forked(tmp_path, "list"), needle)


def test_next_prints_the_sun_events_time_and_the_day_it_was_computed_for(tmp_path, station):
    cli_forked(tmp_path, "add", "moths", "true", "--type", "sun", "--time", "sunset+00:30")
    done = cli_forked(tmp_path, "next", "moths", "-n", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "moths: daily sunset+30m (Europe/Berlin, 52.5°N 13.4°E)" and len(lines) == 4
    zone = ZoneInfo("Europe/Berlin")
    for line in lines[1:]:
        _wd, day, time_, _tz, event, event_time, _on, event_day, offset = line.replace(",", "").split()
        sunset = astral_sun.sunset(Observer(52.5, 13.4), dt.date.fromisoformat(event_day), zone)  # astral, directly
        assert (event, event_time, offset) == ("sunset", f"{sunset:%H:%M:%S}", "+30m")
        due = (sunset.astimezone(dt.timezone.utc) + dt.timedelta(minutes=30)).astimezone(zone)
        assert f"{day} {time_}" == f"{due:%Y-%m-%d %H:%M:%S}"


def test_next_and_list_say_why_a_polar_day_has_no_sunset(tmp_path):
    write_config(tmp_path, [job("moths", "true", "sun", "sunset")], settings={"latitude": 78.2, "longitude": 15.6, "timezone": "Arctic/Longyearbyen"})
    done = cli_forked(tmp_path, "next", "moths", "-n", "1")
    assert done.returncode == 0, done.stderr
    today = dt.datetime.now(ZoneInfo("Arctic/Longyearbyen")).date()
    try:
        astral_sun.sunset(Observer(78.2, 15.6), today, ZoneInfo("Arctic/Longyearbyen"))
        has_sunset_today = True
    except ValueError:
        has_sunset_today = False
    if not has_sunset_today:  # polar night or midnight sun today at Svalbard
        assert f"no sunset on {today}" in done.stdout or f"no sunset from {today}" in done.stdout, done.stdout
        assert "78.2°N 15.6°E" in done.stdout
        assert "moths: no sunset" in cli_forked(tmp_path, "list").stdout


def test_next_errors(tmp_path, station):
    assert_one_line_error(cli_forked(tmp_path, "next", "nope"), "nope")
    assert_one_line_error(cli_forked(tmp_path, "next", "a", "-n", "0"), "-n")


# -- cron export ----------------------------------------------------------------------------------

@pytest.fixture
def exports(tmp_path):
    write_config(tmp_path, [
        job("weekdays", "true", "cron", "*/10 5-21 * * 1-5"), job("nightly", "true", "cron", "@daily"),
        job("moths", "true", "sun", "sunset"), job("traps", "true", "interval", "10m", window="21:00..05:00"),
        job("upload", "true", "daily", "03:00", jitter="5m"), job("wake", "true", "boot", "5m"), job("now", "true", "boot", "0"),
    ], settings={"latitude": 52.5, "longitude": 13.4})
    return tmp_path


@pytest.mark.parametrize("name, fields", [("weekdays", "*/10 5-21 * * 1-5"), ("nightly", "@daily")])
def test_cron_prints_a_cron_jobs_expression_as_is(exports, name, fields):
    done = cli_forked(exports, "cron", name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(fields + " cd ")


@pytest.mark.parametrize("name, needle", [("moths", "cannot follow the sun"), ("traps", "no windows"), ("upload", "no random delay")])
def test_cron_refuses_sun_window_and_jitter_with_the_reason(exports, name, needle):
    assert_one_line_error(cli_forked(exports, "cron", name), name, needle)


def test_cron_of_a_boot_job_is_reboot_plus_its_exact_sleep(exports):
    line = cli_forked(exports, "cron", "wake").stdout.strip()
    assert line.startswith("@reboot ")
    argv = shlex.split(line[len("@reboot "):])
    assert argv[:4] == ["sleep", "300", "&&", "cd"] and argv[-2:] == ["run-job", "wake"] and PY in argv
    assert cli_forked(exports, "cron", "now").stdout.startswith("@reboot cd ")


def test_cron_refuses_a_fixed_time_in_a_zone_the_system_clock_does_not_follow(tmp_path):
    write_config(tmp_path, [job("d", "true", "daily", "02:00")], settings={"timezone": "Pacific/Kiritimati"})  # UTC+14, no machine's zone here
    assert_one_line_error(cli_forked(tmp_path, "cron", "d"), "timezone is Pacific/Kiritimati")
