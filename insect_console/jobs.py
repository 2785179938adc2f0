"""The job model and its validator: one set of rules for the CLI, config files and the console.

Every refusal is a `ValidationError` naming the field and the accepted forms.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping

from insect_console.errors import ValidationError
from insect_console.policies import RunPolicy, parse as parse_policy
from insect_console.textfmt import format_duration

SCHEDULE_TYPES = ("interval", "daily", "weekly", "after")
"""`after`: no schedule of its own, the job runs only when a job it follows ends (see policies)."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_INTERVAL_RE = re.compile(r"([0-9]{1,9})\s*([smhd]?)", re.IGNORECASE | re.ASCII)
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
_ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
MAX_INTERVAL = 366 * 86400
MAX_TIMEOUT = 7 * 86400
"""The longest timeout (and default_timeout): 7 days, well inside what the runner can wait on
at once (epoll takes at most INT_MAX milliseconds, about 24.8 days)."""
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

INTERVAL_FORMS = "whole seconds such as 3600, or 90s, 15m, 1h, 1d (at most 366d)"
DAILY_FORMS = "HH:MM or HH:MM:SS, 24-hour, e.g. 02:00 or 14:30:15"
WEEKLY_FORMS = "a weekday, full or three letters, optionally with a time, e.g. sunday or 'sun 03:00'"


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
        return out

    def describe(self) -> str:
        """The schedule in words, for a table cell: "every 1h", "after detection"."""
        if self.schedule_type == "after":
            return "after " + ", ".join(self.policy.after)
        return self.when.describe()

    @functools.cached_property
    def when(self) -> "When":
        """The parsed schedule (parsed once per job object: the table shows it every second)."""
        return parse_schedule(self.schedule_type, self.schedule_time)

    def argv(self) -> list[str]:
        """The command as argv (without a shell), or for a shell job the `sh -c` form."""
        if self.shell:
            return ["/bin/sh", "-c", self.command]
        return shlex.split(self.command)


@dataclass(frozen=True)
class When:
    """A parsed schedule: every `seconds`, or at `at` (HH:MM:SS) daily or on `weekday`."""

    kind: str
    seconds: int | None = None
    at: str | None = None
    weekday: str | None = None

    def describe(self) -> str:
        """In words, short enough for a table cell: "every 1h", "daily 02:00", "Sun 00:00"."""
        if self.kind == "interval":
            return f"every {format_duration(self.seconds or 0)}"
        at = self.at[:-3] if self.at and self.at.endswith(":00") else self.at
        if self.kind == "daily":
            return f"daily {at}"
        if self.kind == "after":
            return "after another job"
        return f"{(self.weekday or '').capitalize()[:3]} {at}"


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
    m = _INTERVAL_RE.fullmatch(text.strip())
    if not m:
        raise ValidationError("schedule_time", f"{text!r} is not an interval; use {INTERVAL_FORMS}")
    seconds = int(m[1]) * _UNIT_SECONDS[m[2].lower()]
    if seconds < 1:
        raise ValidationError("schedule_time", f"{text!r} is too short; an interval is at least 1 second")
    if seconds > MAX_INTERVAL:
        raise ValidationError("schedule_time", f"{text!r} is too long; an interval is at most 366 days")
    return seconds


def normalize_schedule(schedule_type: Any, schedule_time: Any) -> tuple[str, str]:
    """Check a schedule and return it in its stored form (e.g. daily "2:00" -> "02:00")."""
    if not isinstance(schedule_type, str) or schedule_type.strip().lower() not in SCHEDULE_TYPES:
        raise ValidationError("schedule_type", f"{schedule_type!r} is not one of interval, daily, weekly")
    kind = schedule_type.strip().lower()
    if kind == "after":
        if schedule_time not in (None, ""):
            raise ValidationError("schedule_time", "is not used by schedule_type after; leave it empty (the job runs after the jobs in `after`)")
        return kind, ""
    if isinstance(schedule_time, int) and not isinstance(schedule_time, bool) and kind == "interval":
        schedule_time = str(schedule_time)
    if not isinstance(schedule_time, str) or not schedule_time.strip():
        forms = {"interval": INTERVAL_FORMS, "daily": DAILY_FORMS, "weekly": WEEKLY_FORMS}[kind]
        raise ValidationError("schedule_time", f"is empty; use {forms}")
    text = schedule_time.strip()
    if kind == "interval":
        interval_seconds(text)
        return kind, text
    if kind == "daily":
        return kind, _parse_time(text, "schedule_time", DAILY_FORMS)
    day, _, at = text.partition(" ")
    weekday = _weekday(day)
    if weekday is None:
        raise ValidationError("schedule_time", f"{text!r} does not start with a weekday; use {WEEKLY_FORMS}")
    at = at.strip()
    return kind, weekday + (" " + _parse_time(at, "schedule_time", WEEKLY_FORMS) if at else "")


def _weekday(text: str) -> str | None:
    text = text.strip().lower()
    for day in WEEKDAYS:
        if text == day or text == day[:3]:
            return day
    return None


def parse_schedule(schedule_type: str, schedule_time: str) -> When:
    kind, text = normalize_schedule(schedule_type, schedule_time)
    if kind == "after":
        return When(kind)
    if kind == "interval":
        return When(kind, seconds=interval_seconds(text))
    if kind == "daily":
        return When(kind, at=_with_seconds(text))
    day, _, at = text.partition(" ")
    return When(kind, at=_with_seconds(at or "00:00"), weekday=day)


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
        m = _INTERVAL_RE.fullmatch(timeout.strip())
        if not m or int(m[1]) < 1:
            raise ValidationError("timeout", f"{timeout!r} is not a duration; use whole seconds ≥ 1 (or 90s, 15m, 2h)")
        timeout = int(m[1]) * _UNIT_SECONDS[m[2].lower()]
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
    )
