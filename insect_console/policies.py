"""Run policies of a job: catch-up after a power-off, conditions that wait, retries, chains and
mutual exclusion. The fields as a person writes them in a `[[jobs]]` table, validated here, and
the pure rules the engine asks (no threads, no I/O).

    catch_up = "latest"            # skip | latest | all; default: latest for fixed times, skip for intervals
    catch_up_max_age = "24h"       # older missed due times are not run
    require = { disk_free_mb = 500, max_cpu_temp_c = 75, min_battery_pct = 30, command = "test -e /dev/video0" }
    require_wait = "30m"           # how long a due run waits for its conditions, then it is skipped
    retries = 3                    # on error or timeout, again after retry_delay, x retry_backoff each time
    retry_delay = "1m"
    retry_backoff = 2
    retry_max_delay = "30m"
    after = ["hourly_detection"]   # also run when one of these finishes ...
    after_status = "success"       # ... with this status: success | failure | any
    group = "camera"               # at most one run of a group at a time
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from insect_console.errors import ValidationError
from insect_console.textfmt import parse_duration

CATCH_UP = ("skip", "latest", "all")
AFTER_STATUS = ("success", "failure", "any")
FIXED_TIME_TYPES = ("daily", "weekly", "cron", "sun")
"""Types whose due times are times of day: a missed one is caught up by default."""
REQUIRE_KEYS = ("disk_free_mb", "max_cpu_temp_c", "min_battery_pct", "command", "disk_path")
MAX_RETRIES = 100
MAX_WAIT = 7 * 86400
"""The longest catch-up age, condition wait or retry delay: a week."""
RECHECK = 30.0
"""Seconds between two checks of the conditions of a deferred run."""

DURATION_FORMS = "a duration such as 90s, 15m, 2h or 1d (or whole seconds)"
_GROUP_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def duration_seconds(value: Any, field_name: str, minimum: int = 0, maximum: int = MAX_WAIT) -> int:
    """A duration a person wrote ("15m", "2h", 90), in seconds, or a one-line ValidationError."""
    seconds = parse_duration(value)
    if seconds is None:
        raise ValidationError(field_name, f"{value!r} is not a duration; use {DURATION_FORMS}")
    if not minimum <= seconds <= maximum:
        raise ValidationError(field_name, f"{value!r} is out of range; use {minimum:,} s to {maximum // 86400} days")
    return seconds


@dataclass(frozen=True)
class RunPolicy:
    """A job's run policies; every field has the default that keeps the spec's behaviour."""

    catch_up: str | None = None
    """None: the type's default (see `catch_up_for`)."""
    catch_up_max_age: str = "24h"
    require: Mapping[str, Any] = field(default_factory=dict)
    require_wait: str = "30m"
    retries: int = 0
    retry_delay: str = "1m"
    retry_backoff: float = 2
    retry_max_delay: str = "30m"
    after: tuple[str, ...] = ()
    after_status: str = "success"
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The config form: only what differs from the defaults."""
        default = RunPolicy()
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                out[f.name] = list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
        return out

    def catch_up_for(self, schedule_type: str) -> str:
        """`latest` for fixed-time types, `skip` for intervals (the spec's behaviour), unless set."""
        if self.catch_up is not None:
            return self.catch_up
        return "latest" if schedule_type in FIXED_TIME_TYPES else "skip"

    @property
    def catch_up_max_age_s(self) -> int:
        return duration_seconds(self.catch_up_max_age, "catch_up_max_age")

    @property
    def require_wait_s(self) -> int:
        return duration_seconds(self.require_wait, "require_wait")

    def retry_wait(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`, after attempt `attempt` (1-based) failed:
        retry_delay × retry_backoff^(attempt-1), at most retry_max_delay."""
        delay = duration_seconds(self.retry_delay, "retry_delay") * self.retry_backoff ** (attempt - 1)
        return float(min(delay, duration_seconds(self.retry_max_delay, "retry_max_delay")))

    def retry_at(self, attempt: int, failed_at: dt.datetime, next_due: dt.datetime | None) -> dt.datetime | None:
        """When to try again after attempt `attempt` failed, or None: no retries left, or the
        retry would start at or past the job's next due time (that run comes anyway)."""
        if attempt > self.retries:
            return None
        when = failed_at + dt.timedelta(seconds=self.retry_wait(attempt))
        return None if next_due is not None and when >= next_due else when

    def follows(self, name: str, status: str) -> bool:
        """Whether a run of `name` that ended with `status` starts this job."""
        if name not in self.after:
            return False
        if self.after_status == "any":
            return True
        return (status == "success") == (self.after_status == "success")


def parse(data: Mapping[str, Any]) -> RunPolicy:
    """The run policy of a job table; every refusal names the field and the accepted forms."""
    values: dict[str, Any] = {}
    if data.get("catch_up") is not None:
        if data["catch_up"] not in CATCH_UP:
            raise ValidationError("catch_up", f"{data['catch_up']!r} is not one of {', '.join(CATCH_UP)}")
        values["catch_up"] = data["catch_up"]
    for key, minimum in (("catch_up_max_age", 1), ("require_wait", 0), ("retry_delay", 1), ("retry_max_delay", 1)):
        if data.get(key) is not None:
            duration_seconds(data[key], key, minimum)
            values[key] = str(data[key]).strip()
    if data.get("require") is not None:
        values["require"] = _parse_require(data["require"])
    if data.get("retries") is not None:
        retries = data["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            raise ValidationError("retries", f"must be a whole number from 0 to {MAX_RETRIES}, not {retries!r}")
        values["retries"] = retries
    if data.get("retry_backoff") is not None:
        backoff = data["retry_backoff"]
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 1 <= backoff <= 10:
            raise ValidationError("retry_backoff", f"must be a number from 1 to 10, not {backoff!r}")
        values["retry_backoff"] = backoff
    if data.get("after") is not None:
        after = data["after"]
        if isinstance(after, str):
            after = [after]
        if not isinstance(after, (list, tuple)) or not all(isinstance(a, str) and a for a in after):
            raise ValidationError("after", 'must be a list of job names, e.g. after = ["hourly_detection"]')
        values["after"] = tuple(dict.fromkeys(after))
    if data.get("after_status") is not None:
        if data["after_status"] not in AFTER_STATUS:
            raise ValidationError("after_status", f"{data['after_status']!r} is not one of {', '.join(AFTER_STATUS)}")
        values["after_status"] = data["after_status"]
    if data.get("group") not in (None, ""):
        if not isinstance(data["group"], str) or not _GROUP_RE.fullmatch(data["group"]):
            raise ValidationError("group", f"{data['group']!r} is not a group name; use 1-64 letters, digits, _ - .")
        values["group"] = data["group"]
    return RunPolicy(**values)


def _parse_require(require: Any) -> dict[str, Any]:
    if not isinstance(require, Mapping):
        raise ValidationError("require", 'must be a table, e.g. require = { disk_free_mb = 500, min_battery_pct = 30 }')
    unknown = sorted(set(require) - set(REQUIRE_KEYS))
    if unknown:
        raise ValidationError(f"require.{unknown[0]}", f"is not a condition; the conditions are {', '.join(REQUIRE_KEYS)}")
    out: dict[str, Any] = {}
    for key, low, high in (("disk_free_mb", 0, 10**9), ("max_cpu_temp_c", -50, 200), ("min_battery_pct", 0, 100)):
        if key in require:
            value = require[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValidationError(f"require.{key}", f"must be a number from {low} to {high}, not {value!r}")
            out[key] = value
    for key in ("command", "disk_path"):
        if key in require:
            value = require[key]
            if not isinstance(value, str) or not value.strip() or "\0" in value:
                raise ValidationError(f"require.{key}", "must be a non-empty text")
            out[key] = value
    return out


def require_from_items(items: Iterable[str]) -> dict[str, Any]:
    """A `require` table from KEY=VALUE words (the CLI's --require, the console's form):
    numbers for the thresholds, text for `command` and `disk_path`."""
    table: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError("require", f"{item!r} is not KEY=VALUE, e.g. disk_free_mb=500")
        if key in ("command", "disk_path"):
            table[key] = value
            continue
        try:
            table[key] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            raise ValidationError(f"require.{key}", f"must be a number, not {value!r}") from None
    return table


def check_chains(jobs: Iterable[Any]) -> None:
    """Refuse `after` links to unknown jobs and cycles (a → b → a would run forever)."""
    by_name = {job.name: job for job in jobs}
    for job in by_name.values():
        for name in job.policy.after:
            if name not in by_name:
                raise ValidationError("after", f"{job.name} follows {name!r}, which is not a job")
            if name == job.name:
                raise ValidationError("after", f"{job.name} follows itself")
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for before in by_name[name].policy.after:
            if state.get(before) == 1:
                cycle = path[path.index(before):] + [before]
                raise ValidationError("after", "the chain is a cycle: " + " → ".join(reversed(cycle)))
            if state.get(before) is None:
                walk(before, path + [before])
        state[name] = 2

    for name in by_name:
        if name not in state:
            walk(name, [name])


def followers(jobs: Iterable[Any], name: str, status: str) -> list[Any]:
    """The enabled jobs a run of `name` that ended with `status` starts, in config order."""
    return [job for job in jobs if job.enabled and job.policy.follows(name, status)]


def followed_by(jobs: Iterable[Any], name: str) -> list[str]:
    """The jobs that follow `name` (removing it would break their chain)."""
    return [job.name for job in jobs if name in job.policy.after]
