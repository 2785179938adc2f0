"""The job model and its validator: one set of rules for the CLI, config files and the console.

Every refusal is a `ValidationError` naming the field and the accepted forms.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping

from insect_console.errors import ValidationError
from insect_console.policies import RunPolicy, parse as parse_policy
from insect_console.textfmt import format_duration, parse_duration

SCHEDULE_TYPES = ("interval", "daily", "weekly", "cron", "sun", "boot", "after")
"""`after`: no schedule of its own, the job runs only when a job it follows ends (see policies)."""
SUN_EVENTS = ("sunrise", "sunset", "noon", "dawn", "dusk", "nautical_dawn", "nautical_dusk", "astronomical_dawn", "astronomical_dusk")
CRON_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
               "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
MAX_OFFSET = 12 * 3600
MAX_JITTER = 12 * 3600
MAX_BOOT_DELAY = 86400
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
_OFFSET_RE = re.compile(r"([+-])\s*(?:([0-9]{1,2}):([0-9]{2})|([0-9]{1,4})\s*([mh]))", re.IGNORECASE | re.ASCII)
_SUN_RE = re.compile(r"([a-z_]+)\s*(.*)", re.IGNORECASE | re.ASCII)
_ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
MAX_INTERVAL = 366 * 86400
MAX_TIMEOUT = 7 * 86400
"""The longest timeout (and default_timeout): 7 days, well inside what the runner can wait on
at once (epoll takes at most INT_MAX milliseconds, about 24.8 days)."""

INTERVAL_FORMS = "whole seconds such as 3600, or 90s, 15m, 1h, 1d (at most 366d)"
DAILY_FORMS = "HH:MM or HH:MM:SS, 24-hour, e.g. 02:00 or 14:30:15"
WEEKLY_FORMS = "a weekday, full or three letters, optionally with a time, e.g. sunday or 'sun 03:00'"
CRON_FORMS = "5 fields 'minute hour day month weekday' as Debian cron reads them, e.g. '*/10 5-21 * * 1-5', or @hourly, @daily, @weekly"
SUN_FORMS = f"an event ({', '.join(SUN_EVENTS)}) with an optional offset up to 12h, e.g. sunset+00:30, dawn-15m, sunrise"
BOOT_FORMS = "how long after the machine booted, up to 1d: 5m, 90s, 300 or 0"
WINDOW_FORMS = "START..END, each a time (21:00) or a sun event with an offset (sunset+30m), e.g. 'sunset+30m..sunrise-1h' or '21:00..05:00'"
JITTER_FORMS = "a random delay up to 12h: 90s, 5m, 1h or whole seconds"
FORMS = {"interval": INTERVAL_FORMS, "daily": DAILY_FORMS, "weekly": WEEKLY_FORMS, "cron": CRON_FORMS, "sun": SUN_FORMS, "boot": BOOT_FORMS,
         "after": "nothing: leave it empty (the job runs after the jobs in `after`)"}


@dataclass(frozen=True)
class Job:
    """A job definition as a person writes it in the config. Run state lives elsewhere."""

    name: str
    command: str
    schedule_type: str
    schedule_time: str
    enabled: bool = True
    timeout: int | None = None
    shell: bool = False
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    policy: RunPolicy = field(default_factory=RunPolicy)
    """Catch-up, conditions, retries, chains, group: see policies.py."""
    ping_url: str | None = None
    """A Healthchecks check's URL (https://hc-ping.com/<uuid>), pinged at each run's start and end."""
    ping_slug: str | None = None
    """Instead of ping_url: the check's slug, pinged at settings.ping_base/<slug>."""
    window: str | None = None
    """Interval and cron jobs: runs only inside this daily window ("sunset+30m..sunrise-1h")."""
    jitter: str | None = None
    """A random delay in [0, jitter) added to each due time ("5m")."""

    def replace(self, **changes: Any) -> "Job":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config form: optional fields only when set."""
        out: dict[str, Any] = {
            "name": self.name,
            "command": self.command,
            "schedule_type": self.schedule_type,
            "schedule_time": self.schedule_time,
            "enabled": self.enabled,
        }
        if self.schedule_type == "after":
            del out["schedule_time"]  # the job has no schedule of its own
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.shell:
            out["shell"] = True
        if self.cwd:
            out["cwd"] = self.cwd
        if self.env:
            out["env"] = dict(self.env)
        out.update(self.policy.to_dict())
        if self.ping_url:
            out["ping_url"] = self.ping_url
        if self.ping_slug:
            out["ping_slug"] = self.ping_slug
        if self.window:
            out["window"] = self.window
        if self.jitter:
            out["jitter"] = self.jitter
        return out

    def describe(self) -> str:
        """The schedule in words, for a table cell: "every 1h", "after detection"."""
        if self.schedule_type == "after":
            return "after " + ", ".join(self.policy.after)
        return self.when.describe()

    @functools.cached_property
    def when(self) -> "When":
        """The parsed schedule (parsed once per job object: the table shows it every second)."""
        return parse_schedule(self.schedule_type, self.schedule_time, self.window, self.jitter)

    def argv(self) -> list[str]:
        """The command as argv (without a shell), or for a shell job the `sh -c` form."""
        if self.shell:
            return ["/bin/sh", "-c", self.command]
        return shlex.split(self.command)


@dataclass(frozen=True)
class DayTime:
    """A time of day: fixed (`at`, HH:MM:SS on the local clock) or a sun event plus `offset` seconds."""

    at: str | None = None
    event: str | None = None
    offset: int = 0

    def describe(self) -> str:
        """ "21:00", "sunset+30m", "sunrise−1h" (a minus sign, as in print)."""
        if self.event is None:
            return _short_at(self.at or "00:00:00")
        if not self.offset:
            return self.event
        return f"{self.event}{'+' if self.offset > 0 else '−'}{format_duration(abs(self.offset))}"


@dataclass(frozen=True)
class Window:
    """Runs happen only from `start` to `end` (which may be on the next day)."""

    start: DayTime
    end: DayTime

    def describe(self) -> str:
        return f"{self.start.describe()} to {self.end.describe()}"


@dataclass(frozen=True)
class When:
    """A parsed schedule: every `seconds` (interval), at `at` (HH:MM:SS) daily or on `weekday`,
    a `cron` line, a `sun` event, or `seconds` after boot; optionally inside a `window`, with
    a random delay of up to `jitter` seconds."""

    kind: str
    seconds: int | None = None
    at: str | None = None
    weekday: str | None = None
    cron: str | None = None
    sun: DayTime | None = None
    window: Window | None = None
    jitter: int | None = None

    def describe(self) -> str:
        """In words: "every 1h", "daily 02:00", "Sun 00:00", "every 10m, sunset+30m to sunrise−1h"."""
        return self._described

    @functools.cached_property
    def _described(self) -> str:  # the job table asks every second
        words = self._words()
        if self.window is not None:
            words += f", {self.window.describe()}"
        if self.jitter:
            words += f", +≤{format_duration(self.jitter)} random"
        return words

    def _words(self) -> str:
        if self.kind == "interval":
            return f"every {format_duration(self.seconds or 0)}"
        if self.kind == "cron":
            import cronsim

            said = cronsim.CronSim(self.cron or "", dt.datetime(2000, 1, 1)).explain()
            return said[:1].lower() + said[1:]
        if self.kind == "sun":
            return f"daily {self.sun.describe() if self.sun else '?'}"
        if self.kind == "boot":
            return f"{format_duration(self.seconds or 0)} after boot" if self.seconds else "at boot"
        at = _short_at(self.at or "00:00:00")
        if self.kind == "daily":
            return f"daily {at}"
        if self.kind == "after":
            return "after another job"
        return f"{(self.weekday or '').capitalize()[:3]} {at}"

    @property
    def needs_place(self) -> bool:
        """True when a sun event is part of it: the station's latitude and longitude are needed."""
        return self.sun is not None or (self.window is not None and (self.window.start.event or self.window.end.event) is not None)


def _short_at(at: str) -> str:
    return at[:-3] if at.endswith(":00") and at.count(":") == 2 else at


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError("name", "is empty; use 1-64 letters, digits, _ - or .")
    if not _NAME_RE.fullmatch(name):
        raise ValidationError(
            "name",
            f"{name!r} is not allowed; use 1-64 letters, digits, _ - or ., not starting with .",
        )
    return name


_SHELL_HINT = "; run it through a shell with --shell (shell = true in the config)"


def shell_syntax_in(command: str) -> str | None:
    """The first piece of shell syntax outside quotes (`|`, `>`, `&&`, `$(`...), or None.

    Without a shell such syntax would be passed to the program as literal arguments, which is
    never what the author meant.
    """
    quote = ""
    i = 0
    word_start = True
    while i < len(command):
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = ""
        elif c == "\\":
            i += 2
            word_start = False
            continue
        elif quote == '"':
            if c == '"':
                quote = ""
            elif c == "`" or (c == "$" and i + 1 < len(command) and (command[i + 1] in "({" or command[i + 1].isalpha() or command[i + 1] == "_")):
                return command[i : i + 2]
        elif c in "'\"":
            quote = c
        elif c in "|&;<>()`":
            j = i + 1
            while j < len(command) and command[j] in "|&;<>" and j - i < 2:
                j += 1
            return command[i:j]
        elif c == "$" and i + 1 < len(command) and (command[i + 1] in "({" or command[i + 1].isalpha() or command[i + 1] == "_"):
            return command[i : i + 2]
        elif c in "*?[" or (c in "~#" and word_start):
            return c
        elif c in "\n\r":
            return "newline"
        word_start = c.isspace()
        i += 1
    return None


def validate_command(command: Any, shell: bool) -> str:
    if not isinstance(command, str) or not command.strip():
        raise ValidationError("command", "is empty; give the program and its arguments")
    if "\0" in command:
        raise ValidationError("command", "contains a NUL byte")
    if shell:
        return command
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise ValidationError("command", f"can't be split into arguments ({e})") from None
    if not argv:
        raise ValidationError("command", "is empty; give the program and its arguments")
    syntax = shell_syntax_in(command)
    if syntax is None and _ASSIGNMENT_RE.match(argv[0]):
        syntax = argv[0].split("=", 1)[0] + "=..."
    if syntax:
        raise ValidationError("command", f"uses shell syntax {syntax!r}{_SHELL_HINT}")
    return command


def _parse_time(text: str, field_name: str, forms: str) -> str:
    m = _TIME_RE.fullmatch(text)
    if not m:
        raise ValidationError(field_name, f"{text!r} is not a time; use {forms}")
    hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValidationError(field_name, f"{text!r} is out of range; use {forms}")
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if m[3] is not None else "")


def interval_seconds(text: str) -> int:
    seconds = parse_duration(text)
    if seconds is None:
        raise ValidationError("schedule_time", f"{text!r} is not an interval; use {INTERVAL_FORMS}")
    if seconds < 1:
        raise ValidationError("schedule_time", f"{text!r} is too short; an interval is at least 1 second")
    if seconds > MAX_INTERVAL:
        raise ValidationError("schedule_time", f"{text!r} is too long; an interval is at most 366 days")
    return seconds


def normalize_schedule(schedule_type: Any, schedule_time: Any) -> tuple[str, str]:
    """Check a schedule and return it in its stored form (e.g. daily "2:00" -> "02:00")."""
    if not isinstance(schedule_type, str) or schedule_type.strip().lower() not in SCHEDULE_TYPES:
        raise ValidationError("schedule_type", f"{schedule_type!r} is not one of {', '.join(SCHEDULE_TYPES)}")
    kind = schedule_type.strip().lower()
    if kind == "after":
        if schedule_time not in (None, ""):
            raise ValidationError("schedule_time", "is not used by schedule_type after; leave it empty (the job runs after the jobs in `after`)")
        return kind, ""
    if isinstance(schedule_time, int) and not isinstance(schedule_time, bool) and kind in ("interval", "boot"):
        schedule_time = str(schedule_time)
    if not isinstance(schedule_time, str) or not schedule_time.strip():
        raise ValidationError("schedule_time", f"is empty; use {FORMS[kind]}")
    text = schedule_time.strip()
    if kind == "interval":
        interval_seconds(text)
        return kind, text
    if kind == "daily":
        return kind, _parse_time(text, "schedule_time", DAILY_FORMS)
    if kind == "cron":
        text = " ".join(text.split())
        return kind, text.lower() if text.startswith("@") else text  # crontab macros are lower case
    if kind == "sun":
        parse_sun(text, "schedule_time")
        return kind, "".join(text.split()).lower()
    if kind == "boot":
        boot_delay(text)
        return kind, text
    day, _, at = text.partition(" ")
    weekday = _weekday(day)
    if weekday is None:
        raise ValidationError("schedule_time", f"{text!r} does not start with a weekday; use {WEEKLY_FORMS}")
    at = at.strip()
    return kind, weekday + (" " + _parse_time(at, "schedule_time", WEEKLY_FORMS) if at else "")


def cron_fields(text: str, field_name: str = "schedule_time") -> str:
    """The five fields of a cron line (a macro such as @daily expanded), checked by cronsim
    with Debian cron's rules; cronsim's own extensions (seconds, L, W, #) are refused, so the
    line means the same in a crontab."""
    expr = CRON_MACROS.get(text.strip().lower(), " ".join(text.split()))
    if text.strip().lower() == "@reboot":
        raise ValidationError(field_name, "'@reboot' is not a cron time here; use schedule_type = \"boot\" (e.g. \"0s\" or \"5m\")")
    fields = expr.split()
    if len(fields) != 5:
        raise ValidationError(field_name, f"{text!r} has {len(fields)} fields; use {CRON_FORMS}")
    if any(c in expr.upper() for c in "LW#?"):
        raise ValidationError(field_name, f"{text!r} uses L, W, # or ?, which Debian cron does not know; use {CRON_FORMS}")
    import cronsim  # imported only for cron jobs

    try:
        cronsim.CronSim(expr, dt.datetime(2000, 1, 1))
    except cronsim.CronSimError as e:
        what = str(e).removeprefix("Bad ").strip() or "field"
        where = f"a bad {what} field" if what != "Wrong number of fields" else "a wrong number of fields"
        raise ValidationError(field_name, f"{text!r} has {where}; use {CRON_FORMS}") from None
    return expr


def _offset_seconds(text: str, field_name: str, forms: str, whole: str) -> int:
    m = _OFFSET_RE.fullmatch(text.strip())
    if not m:
        raise ValidationError(field_name, f"{whole!r}: {text!r} is not an offset; use {forms}")
    sign = -1 if m[1] == "-" else 1
    if m[2] is not None:
        seconds = int(m[2]) * 3600 + int(m[3]) * 60
        if int(m[3]) > 59:
            raise ValidationError(field_name, f"{whole!r}: {text!r} is not an offset; use {forms}")
    else:
        seconds = int(m[4]) * (3600 if m[5].lower() == "h" else 60)
    if seconds > MAX_OFFSET:
        raise ValidationError(field_name, f"{whole!r}: the offset is over 12h; use {forms}")
    return sign * seconds


def parse_sun(text: str, field_name: str = "schedule_time", forms: str = SUN_FORMS) -> DayTime:
    """ "sunset+00:30", "dawn-15m", "sunrise" as an event and an offset in seconds."""
    m = _SUN_RE.fullmatch(text.strip())
    event = m[1].lower() if m else ""
    if event not in SUN_EVENTS:
        raise ValidationError(field_name, f"{text!r} does not start with a sun event; use {forms}")
    rest = m[2].strip()
    return DayTime(event=event, offset=_offset_seconds(rest, field_name, forms, text) if rest else 0)


def parse_window(text: Any) -> Window:
    """ "sunset+30m..sunrise-1h", "21:00..05:00" or mixed; the ends may not be equal."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("window", f"is empty; use {WINDOW_FORMS}")
    start, sep, end = text.partition("..")
    if not sep or not start.strip() or not end.strip():
        raise ValidationError("window", f"{text!r} is not START..END; use {WINDOW_FORMS}")
    ends = []
    for part in (start, end):
        part = part.strip()
        if part[:1].isdigit():
            ends.append(DayTime(at=_with_seconds(_parse_time(part, "window", WINDOW_FORMS))))
        else:
            ends.append(parse_sun(part, "window", WINDOW_FORMS))
    if ends[0] == ends[1]:
        raise ValidationError("window", f"{text!r} starts where it ends; use {WINDOW_FORMS}")
    return Window(ends[0], ends[1])


def _duration(text: Any, field_name: str, forms: str, low: int, high: int, what: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    seconds = parse_duration(text)
    if seconds is None:
        raise ValidationError(field_name, f"{text!r} is not a duration; use {forms}")
    if not low <= seconds <= high:
        raise ValidationError(field_name, f"{text!r} is {'too short' if seconds < low else 'too long'} for {what}; use {forms}")
    return seconds


def boot_delay(text: Any) -> int:
    return _duration(text, "schedule_time", BOOT_FORMS, 0, MAX_BOOT_DELAY, "a delay after boot")


def jitter_seconds(text: Any) -> int:
    return _duration(text, "jitter", JITTER_FORMS, 1, MAX_JITTER, "a jitter")


def normalize_window(kind: str, window: Any) -> str | None:
    """The stored form of a job's window (None: none); only interval and cron jobs take one."""
    if window is None or (isinstance(window, str) and not window.strip()):
        return None
    parse_window(window)
    if kind not in ("interval", "cron"):
        raise ValidationError("window", f"only interval and cron jobs take a window (a {kind} job runs at its own times)")
    start, _, end = window.partition("..")
    return f"{''.join(start.split()).lower()}..{''.join(end.split()).lower()}"


def normalize_jitter(jitter: Any) -> str | None:
    if jitter is None or (isinstance(jitter, str) and not jitter.strip()):
        return None
    jitter_seconds(jitter)
    return str(jitter).strip()


def _weekday(text: str) -> str | None:
    text = text.strip().lower()
    for day in WEEKDAYS:
        if text == day or text == day[:3]:
            return day
    return None


def parse_schedule(schedule_type: str, schedule_time: str, window: str | None = None, jitter: str | None = None) -> When:
    kind, text = normalize_schedule(schedule_type, schedule_time)
    if kind == "after":
        return When(kind)
    extra: dict[str, Any] = {
        "window": parse_window(window) if normalize_window(kind, window) else None,
        "jitter": jitter_seconds(jitter) if normalize_jitter(jitter) else None,
    }
    if kind == "interval":
        return When(kind, seconds=interval_seconds(text), **extra)
    if kind == "daily":
        return When(kind, at=_with_seconds(text), **extra)
    if kind == "cron":
        return When(kind, cron=cron_fields(text), **extra)
    if kind == "sun":
        return When(kind, sun=parse_sun(text), **extra)
    if kind == "boot":
        return When(kind, seconds=boot_delay(text), **extra)
    day, _, at = text.partition(" ")
    return When(kind, at=_with_seconds(at or "00:00:00"), weekday=day, **extra)


def check_place(job: "Job", latitude: float | None, longitude: float | None) -> None:
    """A job that follows the sun needs the station's place (settings latitude, longitude)."""
    if job.when.needs_place and (latitude is None or longitude is None):
        field_name = "schedule_time" if job.when.sun is not None else "window"
        raise ValidationError(field_name, "follows the sun, so the station's place is needed: set latitude and longitude in [settings] (degrees, e.g. latitude = 52.5, longitude = 13.4)")


def _with_seconds(hhmm: str) -> str:
    return hhmm if hhmm.count(":") == 2 else hhmm + ":00"


def shown_number(value: int | str) -> str:
    """A number for a one-line message: a huge one is cut (4300 digits don't fit on a line)."""
    text = value if isinstance(value, str) else (str(value) if abs(value) < 10**30 else f"{'-' if value < 0 else ''}1e{len(str(abs(value)))-1}+")
    return text if len(text) <= 32 else text[:29] + "..."


def validate_timeout(timeout: Any) -> int | None:
    if timeout is None or timeout == "":
        return None
    if isinstance(timeout, str) and timeout.strip().isascii() and timeout.strip().isdigit() and len(timeout.strip()) <= 9:
        timeout = int(timeout.strip())
    if isinstance(timeout, str) and timeout.strip().isascii() and timeout.strip().isdigit():
        raise ValidationError("timeout", f"{shown_number(timeout.strip())} s is too long; a timeout is at most {MAX_TIMEOUT} s (7 days)")
    if isinstance(timeout, str):
        seconds = parse_duration(timeout)
        if not seconds:
            raise ValidationError("timeout", f"{timeout!r} is not a duration; use whole seconds ≥ 1 (or 90s, 15m, 2h)")
        timeout = seconds
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValidationError("timeout", f"{timeout!r} is not a duration; use whole seconds ≥ 1")
    if timeout > MAX_TIMEOUT:
        raise ValidationError("timeout", f"{shown_number(timeout)} s is too long; a timeout is at most {MAX_TIMEOUT} s (7 days)")
    return timeout


def make_job(data: Mapping[str, Any]) -> Job:
    """Build a valid Job from a mapping (a config table, CLI options or a form)."""
    known = {f.name for f in dataclasses.fields(Job)} - {"policy"} | {f.name for f in dataclasses.fields(RunPolicy)}
    unknown = sorted(set(data) - known - {"last_run", "last_status", "error_count"})
    if unknown:
        raise ValidationError(unknown[0], f"is not a job field; the fields are {', '.join(sorted(known))}")
    name = validate_name(data.get("name"))
    shell = data.get("shell", False)
    if not isinstance(shell, bool):
        raise ValidationError("shell", "must be true or false")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("enabled", "must be true or false")
    command = validate_command(data.get("command"), shell)
    kind, when = normalize_schedule(data.get("schedule_type"), data.get("schedule_time"))
    policy = parse_policy(data)
    if kind == "after" and not policy.after:
        raise ValidationError("after", 'schedule_type after needs the jobs it follows, e.g. after = ["hourly_detection"]')
    if kind == "cron":
        cron_fields(when)
    window = normalize_window(kind, data.get("window"))
    jitter = normalize_jitter(data.get("jitter"))
    cwd = data.get("cwd") or None
    if cwd is not None and (not isinstance(cwd, str) or "\0" in cwd):
        raise ValidationError("cwd", "must be a directory path")
    env = data.get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValidationError("env", "must be a table of text values, e.g. env = { PATH = \"/usr/bin\" }")
    if any(not k or "=" in k or "\0" in k or "\0" in v for k, v in env.items()):
        raise ValidationError("env", "has a name that is empty or contains '=' or NUL")
    ping_url, ping_slug = data.get("ping_url") or None, data.get("ping_slug") or None
    if ping_url is not None or ping_slug is not None:
        from insect_console import pings  # only for jobs that ping

        if ping_url is not None and ping_slug is not None:
            raise ValidationError("ping_slug", "give ping_url or ping_slug, not both")
        ping_url = pings.validate_url(ping_url, "ping_url") if ping_url is not None else None
        ping_slug = pings.validate_slug(ping_slug) if ping_slug is not None else None
    return Job(
        name=name,
        command=command,
        schedule_type=kind,
        schedule_time=when,
        enabled=enabled,
        timeout=validate_timeout(data.get("timeout")),
        shell=shell,
        cwd=cwd,
        env=dict(env),
        policy=policy,
        ping_url=ping_url,
        ping_slug=ping_slug,
        window=window,
        jitter=jitter,
    )
