"""Lines for cron and a unit for systemd, with every path quoted so nothing can be injected."""

from __future__ import annotations

import getpass
import re
import shlex
from pathlib import Path

from insect_console.config import Settings
from insect_console.errors import UserError
from insect_console.jobs import WEEKDAYS, Job
from insect_console.textfmt import format_duration

_CRON_DOW = {day: (i + 1) % 7 for i, day in enumerate(WEEKDAYS)}  # cron: 0 = Sunday


def cron_schedule(job: Job, settings: Settings | None = None) -> str:
    """The five cron fields for `job` (or @reboot), or UserError when cron can't express it exactly."""
    when = job.when
    if when.kind == "sun":
        raise UserError(f"{job.name}: cron cannot follow the sun: sunset moves every day, a crontab line is fixed")
    if when.window is not None:
        raise UserError(f"{job.name}: cron has no windows ({job.window!r}); run it with the scheduler itself")
    if when.jitter:
        raise UserError(f"{job.name}: cron has no random delay (jitter {job.jitter!r}); run it with the scheduler itself")
    if when.kind == "boot":
        return "@reboot"
    zone = settings.timezone if settings is not None else ""
    if zone and when.kind != "interval" and not _system_zone_is(zone):
        raise UserError(f"{job.name}: cron runs on the system's clock, but this config's timezone is {zone}; "
                        "set the system's zone to it (timedatectl set-timezone) or run it with the scheduler itself")
    if when.kind == "cron":
        return job.schedule_time  # as written: cron reads it exactly as we do (cronsim follows Debian cron)
    if when.kind in ("daily", "weekly"):
        hour, minute, second = (int(x) for x in when.at.split(":"))
        if second:
            raise UserError(f"{job.name}: cron has no seconds, so {job.schedule_time!r} can't be written as a cron line")
        dow = "*" if when.kind == "daily" else str(_CRON_DOW[when.weekday])
        return f"{minute} {hour} * * {dow}"
    seconds = when.seconds or 0
    every = format_duration(seconds)
    if seconds % 60:
        raise UserError(f"{job.name}: every {every} can't be written as a cron line: cron counts whole minutes")
    minutes = seconds // 60
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0:
        hours = minutes // 60
        if hours < 24 and 24 % hours == 0:
            return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        if hours == 24:
            return "0 0 * * *"
        if hours == 168:
            return "0 0 * * 0"
    raise UserError(
        f"{job.name}: every {every} can't be written as a cron line: cron's minutes and hours restart "
        "every hour and day, so the runs would not be evenly spaced (use an interval that divides an "
        "hour or a day, or the scheduler itself)"
    )


def _system_zone_is(name: str) -> bool:
    """Whether the system's clock follows the zone `name` (same offsets over a year)."""
    import datetime as dt
    import zoneinfo

    zone = zoneinfo.ZoneInfo(name)
    instants = [dt.datetime(2026, m, 15, 12, tzinfo=dt.timezone.utc) for m in range(1, 13)]
    return all(t.astimezone(zone).utcoffset() == t.astimezone().utcoffset() for t in instants)


def _cron_escape(text: str) -> str:
    """cron turns an unescaped % into a newline; escape it. Refuse what a crontab can't hold."""
    if "\n" in text or "\r" in text:
        raise UserError("a path or name with a line break can't be put in a crontab line")
    if "\\%" in text:
        # cron reads a backslash before the escaping one as literal, and the % then cuts the line
        raise UserError("a path with a backslash before % can't be written in a crontab line")
    return text.replace("%", r"\%")


def cron_line(job: Job, config_path: Path, base_dir: Path, python: str, settings: Settings | None = None) -> str:
    """A crontab line; a boot job is `@reboot sleep N && ...` (N exactly its delay)."""
    fields = cron_schedule(job, settings)
    delay = ["sleep", str(job.when.seconds), "&&"] if job.when.kind == "boot" and job.when.seconds else []
    command = " ".join(
        [
            *delay,
            "cd",
            shlex.quote(str(base_dir)),
            "&&",
            shlex.quote(python),
            "-m",
            "insect_console",
            "-c",
            shlex.quote(str(config_path)),
            "run-job",
            shlex.quote(job.name),
        ]
    )
    return f"{fields} {_cron_escape(command)}"


def _systemd_quote(text: str) -> str:
    """One ExecStart= word: double-quoted, with systemd's escapes (\\ " $ and % specifiers)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
    return f'"{escaped}"'


def _systemd_path(text: str) -> str:
    """A path setting such as WorkingDirectory= is taken verbatim except for % specifiers."""
    if "\n" in text:
        raise UserError("a path with a newline can't be put in a systemd unit")
    return text.replace("%", "%%")


_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10}")


def systemd_unit(config_path: Path, base_dir: Path, python: str, settings: Settings, user: str | None = None) -> str:
    user = user or getpass.getuser()
    if not _USER_RE.fullmatch(user):
        raise UserError(f"--user: {user!r} is not a user name")
    for path in (str(config_path), str(base_dir), python):
        if "\n" in path:
            raise UserError("a path with a newline can't be put in a systemd unit")
    exec_start = " ".join(
        [_systemd_quote(python), "-m", "insect_console", "-c", _systemd_quote(str(config_path)), "scheduler", "--no-ui"]
    )
    stop_timeout = settings.shutdown_grace + settings.kill_grace + 15
    return f"""\
[Unit]
Description=insect-console batch scheduler ({_systemd_path(str(config_path))})
After=network-online.target time-sync.target
Wants=network-online.target

[Service]
# the daemon says READY=1 once it schedules, and STATUS= lines (systemctl status shows them)
Type=notify
NotifyAccess=main
User={user}
WorkingDirectory={_systemd_path(str(base_dir))}
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
# the scheduling loop itself pings the watchdog: a loop that hangs this long is restarted (0: off)
WatchdogSec={settings.watchdog_sec}
# the scheduler ends its runs within shutdown_grace + kill_grace; systemd waits longer than that
TimeoutStopSec={stop_timeout}
KillMode=mixed
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=multi-user.target
"""
