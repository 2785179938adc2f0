"""The job config file: TOML (or the spec's JSON), read strictly, written atomically under a lock.

A file that does not parse or validate is reported in one line and never rewritten. A change
(add, edit, enable, ...) rewrites only the lines of the job it changes: comments, blank lines,
key order and formatting stay as the person wrote them (see tomledit.py, imported only to write).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from insect_console.errors import ConfigError, JobNotFound, UserError, ValidationError
from insect_console.fileio import NotRegularFile, atomic_write, check_private_dir, check_private_file, locked, open_regular, read_regular
from insect_console.records import MAX_OUTPUT_TAIL
from insect_console.jobs import MAX_TIMEOUT, Job, check_place, make_job, shown_number
from insect_console.policies import check_chains, followed_by

DEFAULT_CONFIG_PATH = Path("config/batch_config.toml")
SCHEDULER_LOCK = "scheduler.lock"
"""In the runtime directory: held by the one scheduler of a config for its lifetime."""


def setting(default: Any, doc: str, least: int = 1, most: int | None = None, unit: str = "", accepted: str | None = None) -> Any:
    """A `[settings]` field with its documentation and, for a number, its bounds: the one place a
    setting is described. The header of a new config file and the README's settings table are
    made from these. The bounds lie far past any use on a station, and inside what the engine
    can compute with (epoll waits, dates a day count reaches, memory a record uses)."""
    return field(default=default, metadata={"doc": doc, "bounds": (least, most, unit) if most is not None else None, "accepted": accepted})


log = logging.getLogger("insect_console.config")


@dataclass(frozen=True)
class Settings:
    """The `[settings]` table. Relative paths are taken from the working directory."""

    log_dir: str = setting("logs/batch", "history files and per-run output; relative to the working directory")
    default_timeout: int = setting(1800, "seconds a run may take, for jobs without their own timeout", most=MAX_TIMEOUT, unit=" s (7 days)")
    kill_grace: int = setting(10, "seconds between SIGTERM and SIGKILL when a run is ended", least=0, most=3600, unit=" s (1 hour)")
    shutdown_grace: int = setting(30, "seconds running jobs get when the scheduler stops", most=86400, unit=" s (1 day)")
    max_parallel: int = setting(4, "runs at the same time; more wait for a free worker", most=64)
    failure_threshold: int = setting(3, "failures in a row before a notification", most=1000)
    notify_command: str = setting("", "run on a notification (see Notifications); empty: none")
    output_tail_bytes: int = setting(65536, "bytes of stdout kept in a history record", most=MAX_OUTPUT_TAIL, unit=" (1 MiB)")
    history_keep_days: int = setting(365, "daily history files kept", most=36500, unit=" (100 years: keep them all)")
    output_keep_days: int = setting(30, "days per-run output files are kept ...", most=36500, unit=" (100 years: keep them all)")
    output_max_mb: int = setting(1024, "... and their total size at most, in MiB (oldest removed first)", most=1024 * 1024, unit=" (1 TiB)")
    output_max_run_mb: int = setting(64, "MiB of output one run's file may hold (cut, with a note, beyond)", most=1024 * 1024, unit=" (1 TiB)")
    battery_command: str = setting("", "prints the battery level in % for `require.min_battery_pct` (PiJuice, Witty Pi); empty: psutil")
    metrics_file: str = setting("", "a Prometheus textfile (*.prom) written after every run and every minute; empty: off")
    ping_base: str = setting("", "Healthchecks URL for jobs that give a ping_slug: https://hc-ping.com/<project ping key>")
    watchdog_sec: int = setting(60, "WatchdogSec= of the unit `insect-console systemd` writes; 0: no watchdog", least=0, most=86400, unit=" s (1 day)")
    latitude: float | None = setting(None, "the station's latitude in degrees, north positive; needed by sun schedules and windows", accepted="-90 to 90")
    longitude: float | None = setting(None, "the station's longitude in degrees, east positive; needed with latitude", accepted="-180 to 180")
    elevation: float = setting(0.0, "metres above sea level (the sun rises earlier seen from up high)", accepted="-500 to 9,000 m")
    timezone: str = setting("", "IANA time zone fixed times follow (daily, weekly, cron, sun, windows), e.g. Europe/Berlin; empty: the system's", accepted="a zone name")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Settings":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                raise ValidationError(f"settings.{key}", f"is not a setting; the settings are {', '.join(fields)}")
            default = fields[key].default
            if key in _PLACE:
                values[key] = _place_setting(key, value)
                continue
            if isinstance(default, int):
                least, most, unit = fields[key].metadata["bounds"]
                if isinstance(value, bool) or not isinstance(value, int) or value < least:
                    raise ValidationError(f"settings.{key}", f"must be a whole number ≥ {least}, not {value!r}")
                if value > most:
                    raise ValidationError(f"settings.{key}", f"{shown_number(value)} is too large; at most {most}{unit}")
            elif not isinstance(value, str):
                raise ValidationError(f"settings.{key}", f"must be text, not {value!r}")
            values[key] = value
        if "log_dir" in values and not values["log_dir"].strip():
            raise ValidationError("settings.log_dir", "is empty; give a directory such as logs/batch")
        for key in (name for name, default, _doc in cls.documented() if isinstance(default, str)):
            if "\0" in values.get(key, ""):
                raise ValidationError(f"settings.{key}", "contains a NUL byte")
        if values.get("metrics_file", "").strip() and not values["metrics_file"].strip().endswith(".prom"):
            raise ValidationError("settings.metrics_file", "must end in .prom (node_exporter's textfile collector reads only *.prom files)")
        if values.get("ping_base", "").strip():
            from insect_console import pings  # only for stations that ping

            values["ping_base"] = pings.validate_url(values["ping_base"], "settings.ping_base")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """As the config file holds it: a setting that is not set (None) is left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def documented(cls) -> list[tuple[str, Any, str]]:
        """(name, default, doc) of every setting, in the order they are declared."""
        return [(f.name, f.default, f.metadata.get("doc", "")) for f in dataclasses.fields(cls)]

    @classmethod
    def accepted(cls, name: str) -> str | None:
        """What a setting without number bounds accepts, in words."""
        return next(f.metadata.get("accepted") for f in dataclasses.fields(cls) if f.name == name)

    @classmethod
    def bounds(cls, name: str) -> tuple[int, int, str] | None:
        """(least, most, unit) of a number setting."""
        return next(f.metadata.get("bounds") for f in dataclasses.fields(cls) if f.name == name)


_PLACE = {"latitude": 90, "longitude": 180, "elevation": None, "timezone": None}


def _place_setting(key: str, value: Any) -> Any:
    """The station's place and zone: numbers in range, a time zone that exists."""
    if key == "timezone":
        if not isinstance(value, str):
            raise ValidationError("settings.timezone", f"must be text, not {value!r}")
        if not value.strip():
            return ""  # the system's zone: nothing to look up (tzlocal costs `list` 20 ms)
        from insect_console.triggers.base import zone_named

        zone_named(value)  # ValidationError for a zone that does not exist
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"settings.{key}", f"must be a number of {'metres' if key == 'elevation' else 'degrees'}, not {value!r}")
    limit = _PLACE[key]
    if limit is not None and not -limit <= value <= limit:
        raise ValidationError(f"settings.{key}", f"{value!r} is outside ±{limit}; use degrees from -{limit} to {limit}")
    if limit is None and not -500 <= value <= 9000:
        raise ValidationError(f"settings.{key}", f"{value!r} is not an elevation on Earth; use metres from -500 to 9000")
    return float(value)


def _toml_value(value: Any) -> str:
    """A default as TOML writes it (a JSON string is a TOML basic string); None: unset."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def settings_header() -> str:
    """The settings part of a new config file's header comment."""
    rows = [(f"{name} = {_toml_value(default)}", doc) for name, default, doc in Settings.documented()]
    width = max(len(left) for left, _ in rows)
    return "\n".join(f"#   {left:<{width}}  {doc}" for left, doc in rows)


def settings_table() -> str:
    """The README's settings table (a test keeps the README in step with it)."""
    lines = ["| setting | default | what it is | accepted |", "| --- | --- | --- | --- |"]
    for name, default, doc in Settings.documented():
        bounds = Settings.bounds(name)
        accepted = Settings.accepted(name) or (f"{bounds[0]:,} to {bounds[1]:,}{bounds[2]}" if bounds else "text")
        lines.append(f"| `{name}` | `{_toml_value(default)}` | {doc} | {accepted} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Config:
    settings: Settings = field(default_factory=Settings)
    jobs: tuple[Job, ...] = ()

    def job(self, name: str) -> Job:
        try:
            return self._by_name[name]
        except KeyError:
            raise JobNotFound(name) from None

    @functools.cached_property
    def _by_name(self) -> dict[str, Job]:
        """Jobs by name: a burst of 200 due jobs looks each one up."""
        return {job.name: job for job in self.jobs}

    def names(self) -> list[str]:
        return [job.name for job in self.jobs]

    def with_job(self, job: Job, replace: str | None = None) -> "Config":
        """Add `job`, or put it in place of the job named `replace` (keeping its position)."""
        check_place(job, self.settings.latitude, self.settings.longitude)
        if replace is None:
            if job.name in self.names():
                raise ValidationError("name", f"a job named {job.name!r} already exists")
            jobs = self.jobs + (job,)
        else:
            self.job(replace)
            if job.name != replace and job.name in self.names():
                raise ValidationError("name", f"a job named {job.name!r} already exists")
            jobs = tuple(job if j.name == replace else j for j in self.jobs)
            if job.name != replace:  # a rename carries the jobs that follow it along
                jobs = tuple(_follow_renamed(j, replace, job.name) for j in jobs)
        check_chains(jobs)
        return dataclasses.replace(self, jobs=jobs)

    def without_job(self, name: str, force: bool = False) -> "Config":
        """Remove `name`; refused while other jobs follow it, unless `force` (their links go too)."""
        self.job(name)
        followers = followed_by(self.jobs, name)
        if followers and not force:
            raise ValidationError("name", f"{', '.join(followers)} follow{'s' if len(followers) == 1 else ''} {name}; "
                                  "remove the link first, or remove with --force to drop it")
        stranded = [j.name for j in self.jobs if j.schedule_type == "after" and j.policy.after == (name,)]
        if stranded:
            raise ValidationError("name", f"{', '.join(stranded)} run{'s' if len(stranded) == 1 else ''} only after {name}; remove or reschedule {'it' if len(stranded) == 1 else 'them'} first")
        jobs = tuple(_follow_renamed(j, name, None) for j in self.jobs if j.name != name)
        return dataclasses.replace(self, jobs=jobs)


def _follow_renamed(job: Job, old: str, new: str | None) -> Job:
    """`job` with its link to `old` pointing at `new` (None: dropped)."""
    if old not in job.policy.after:
        return job
    after = tuple(new if a == old else a for a in job.policy.after if a != old or new is not None)
    return job.replace(policy=dataclasses.replace(job.policy, after=after))


DEFAULT_JOBS = (
    Job("hourly_detection", "python main.py --mode single", "interval", "3600"),
    Job("daily_analysis", "python main.py --mode analysis", "daily", "02:00"),
    Job("weekly_cleanup", "python main.py --mode cleanup", "weekly", "sunday"),
    Job("daily_backup", "python main.py --mode backup", "daily", "03:00", enabled=False),
)

_TOML_HEADER = """\
# insect-console job configuration.
# [settings] (optional; these are the defaults):
{settings}
# Each [[jobs]] table is one job:
#   name           unique; letters, digits, _ - . (1-64)
#   command        program and arguments, run without a shell unless shell = true
#   schedule_type  "interval" | "daily" | "weekly" | "cron" | "sun" | "boot"
#   schedule_time  interval: "3600" (seconds), "90s", "15m", "1h"
#                  daily:    "02:00" or "02:00:30"
#                  weekly:   "sunday" (= Sunday 00:00) or "sun 03:00"
#                  cron:     "*/10 5-21 * * 1-5", "@hourly", "@daily", "@weekly"
#                  sun:      "sunset+00:30", "dawn-15m", "sunrise" (needs latitude, longitude)
#                  boot:     "5m" (once per boot of the machine, that long after it)
#   enabled        true | false
#   optional:      timeout (seconds), shell (bool), cwd (directory), env (table),
#                  window = "sunset+30m..sunrise-1h" or "21:00..05:00" (interval and cron jobs),
#                  jitter = "5m" (a random delay in [0, 5m) on each due time),
#                  ping_url (a Healthchecks check, https://hc-ping.com/<uuid>)
#   run policies:  catch_up, catch_up_max_age, require (a table), require_wait, retries,
#                  retry_delay, retry_backoff, retry_max_delay, after = [...], after_status, group
#                  (see the README, "Run policies"); schedule_type "after" runs only after others
# Run state (last run, status, failures) is kept in a separate .state.json file.
# `insect-console add/edit/...` and the console change only the lines of the job they change:
# your comments, blank lines and key order are kept.

"""


def toml_header() -> str:
    """The comment a new config file starts with: every setting and job field, documented."""
    return _TOML_HEADER.format(settings=settings_header())


class ConfigStore:
    """One config file and the files that live beside it (state, locks, runtime)."""

    def __init__(self, path: Path | str = DEFAULT_CONFIG_PATH, base_dir: Path | str | None = None) -> None:
        self.base_dir = Path(base_dir or Path.cwd()).absolute()
        path = Path(path)
        self.path = path if path.is_absolute() else self.base_dir / path
        self.is_json = self.path.suffix.lower() == ".json"
        stem = self.path.stem
        self.state_path = self.path.with_name(f"{stem}.state.json")
        self.runtime_dir = self.path.with_name(f".{stem}.run")
        self.lock_path = self.runtime_dir / "config.lock"
        self.scheduler_lock_path = self.runtime_dir / SCHEDULER_LOCK

    @property
    def directory(self) -> Path:
        """The config's directory: the operator's, made only with the default config on first
        use, never by a run's writes (fileio's `upto`: a directory being restored stays away)."""
        return self.path.parent

    # -- reading ---------------------------------------------------------

    def load(self, create: bool = True) -> Config:
        """Read and validate the config; create it with the default jobs if it is missing."""
        if not self.path.exists():
            if not create:
                raise ConfigError(f"{self.display_path}: no such config file")
            self._create_default()
        return self._read_and_parse()

    def _read_and_parse(self) -> Config:
        return self.parse(self._read_bytes())

    def _read_bytes(self) -> bytes:
        try:
            # a symlinked config is followed (a person chose it), but a FIFO or a device is
            # refused: opened without blocking, checked on the open descriptor
            with os.fdopen(open_regular(self.path, os.O_RDONLY, follow=True), "rb") as f:
                check_private_file(self.path, "config file", os.fstat(f.fileno()))
                return f.read()
        except PermissionError as e:
            raise ConfigError(str(e)) from None
        except NotRegularFile as e:
            raise ConfigError(f"{self.display_path}: {e.strerror}; refusing to read it (put the config file there)") from None
        except OSError as e:
            raise ConfigError(f"{self.display_path}: can't read: {e.strerror}") from None

    @property
    def display_path(self) -> str:
        try:
            return str(self.path.relative_to(Path.cwd()))
        except ValueError:
            return str(self.path)

    def parse(self, raw: bytes) -> Config:
        where = self.display_path
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{where}: not UTF-8 text (byte {e.start})") from None
        try:
            data = json.loads(text) if self.is_json else tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{where}: not valid TOML: {e}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: line {e.lineno}, column {e.colno}: not valid JSON: {e.msg}") from None
        except (ValueError, RecursionError) as e:
            raise ConfigError(f"{where}: can't be parsed: {e}") from None
        return self._build(data, text, where)

    def _build(self, data: Any, text: str, where: str) -> Config:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: the top level must be a table with a jobs list")
        unknown = sorted(set(data) - {"settings", "jobs"})
        if unknown:
            raise ConfigError(f"{where}: unknown top-level key {unknown[0]!r}; expected [settings] and [[jobs]]")
        try:
            settings = Settings.from_dict(data.get("settings") or {}) if isinstance(data.get("settings", {}), dict) else None
        except ValidationError as e:
            raise ConfigError(f"{where}: {e}") from None
        if settings is None:
            raise ConfigError(f"{where}: settings must be a table")
        raw_jobs = data.get("jobs", [])
        if not isinstance(raw_jobs, list):
            raise ConfigError(f"{where}: jobs must be a list of tables ([[jobs]])")
        jobs: list[Job] = []
        seen: set[str] = set()
        for index, item in enumerate(raw_jobs, 1):
            label = f"job #{index}"
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                label += f" ({item['name']})" if item["name"].isprintable() else f" ({item['name']!r})"

            def refused(reason: str, item=item, label=label) -> ConfigError:
                # the line is looked up only for the message: a search per job would make reading
                # a thousand-job config quadratic
                line = _line_of_job(text, item.get("name") if isinstance(item, dict) else None)
                return ConfigError(f"{where}: " + (f"line {line}: " if line else "") + f"{label}: {reason}")

            if not isinstance(item, dict):
                raise refused("must be a table")
            try:
                job = make_job(item)
                check_place(job, settings.latitude, settings.longitude)
            except ValidationError as e:
                raise refused(str(e)) from None
            if job.name in seen:
                raise refused(f"name: {job.name!r} is used by more than one job")
            if job.ping_slug and not settings.ping_base:
                raise refused(PING_SLUG_NEEDS_BASE)
            seen.add(job.name)
            jobs.append(job)
        try:
            check_chains(jobs)
        except ValidationError as e:
            raise ConfigError(f"{where}: {e}") from None
        return Config(settings=settings, jobs=tuple(jobs))

    def legacy_state(self) -> dict[str, dict[str, Any]]:
        """Run-state fields found in a spec-format JSON config (used to seed the state file)."""
        if not self.is_json or not self.path.exists():
            return {}
        try:
            data = json.loads(read_regular(self.path, follow=True))
            return {
                j["name"]: {k: j.get(k) for k in ("last_run", "last_status", "error_count") if j.get(k) is not None}
                for j in data.get("jobs", [])
                if isinstance(j, dict) and isinstance(j.get("name"), str)
            }
        except (OSError, ValueError, AttributeError):
            return {}

    # -- writing ---------------------------------------------------------

    def render(self, config: Config, state: Mapping[str, Mapping[str, Any]] | None = None) -> bytes:
        """A whole new file (the default config, `convert`); changes to a file go through `update`."""
        if self.is_json:
            jobs = []
            for job in config.jobs:
                entry = job.to_dict()
                js = (state or {}).get(job.name, {})
                entry.update(last_run=js.get("last_run"), last_status=js.get("last_status"), error_count=js.get("error_count", 0))
                jobs.append(entry)
            doc: dict[str, Any] = {"jobs": jobs}
            if config.settings != Settings():
                doc["settings"] = config.settings.to_dict()
            return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
        from insect_console import tomledit  # tomlkit: only where a file is written

        return tomledit.render_new(toml_header(), config).encode()

    def update(self, change: Callable[[Config], Config], state: Mapping[str, Any] | None = None) -> Config:
        """Read, change and write the config under the config lock: no update is ever lost.

        Only what changed is rewritten (the changed job's lines); the rest of the file is kept
        as it is, comments included."""
        if not self.path.exists():
            self._create_default()
        with locked(self.lock_path):
            raw = self._read_bytes()
            current = self.parse(raw)
            new = change(current)
            if new is not current:
                check_config(new)
                atomic_write(self.path, self._edited(raw, current, new, state if state is not None else self._run_state()))
            return new

    def _edited(self, raw: bytes, current: Config, new: Config, state: Mapping[str, Any] | None) -> bytes:
        """The file changed from `current` to `new` in place; read back to check it, else (a file
        shape the editor does not handle) the whole file is written anew, and that is logged."""
        from insect_console import tomledit

        text = raw.decode("utf-8")
        try:
            edited = (tomledit.edit_json(text, current, new, state) if self.is_json else tomledit.edit_toml(text, current, new)).encode()
            if self.parse(edited) == new:
                return edited
            reason = "the edited file did not read back as intended"
        except tomledit.CantEdit as e:
            reason = str(e)
        except (ConfigError, ValueError) as e:
            reason = f"the edited file did not read back: {e}"
        log.warning("%s: written anew, without its comments (%s)", self.display_path, reason)
        return self.render(new, state)

    def _run_state(self) -> dict[str, Any] | None:
        """For a spec-format JSON config: the run state to write into it (the state file's, else the file's own)."""
        if not self.is_json:
            return None
        merged = self.legacy_state()
        try:
            merged.update(json.loads(read_regular(self.state_path)).get("jobs", {}))
        except (OSError, ValueError, AttributeError):
            pass
        return merged

    def _create_default(self) -> None:
        try:
            with locked(self.lock_path):
                if self.path.exists():
                    return
                atomic_write(self.path, self.render(Config(jobs=DEFAULT_JOBS)))
        except OSError as e:
            raise ConfigError(f"{self.display_path}: can't create the default config: {e.strerror or e}") from None

    # -- the usual changes -----------------------------------------------

    def add_job(self, job: Job) -> Config:
        return self.update(lambda c: c.with_job(job))

    def replace_job(self, name: str, job: Job) -> Config:
        return self.update(lambda c: c.with_job(job, replace=name))

    def remove_job(self, name: str, force: bool = False) -> Config:
        return self.update(lambda c: c.without_job(name, force))

    def set_enabled(self, name: str, enabled: bool) -> Config:
        def change(c: Config) -> Config:
            job = c.job(name)
            return c if job.enabled == enabled else c.with_job(job.replace(enabled=enabled), replace=name)

        return self.update(change)

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p

    def check_log_dir(self, settings: Settings) -> None:
        """Refuse (ConfigError, one line) a log directory group or others can write into."""
        try:
            check_private_dir(self.resolve(settings.log_dir), "log directory")
        except PermissionError as e:
            raise ConfigError(str(e)) from None

    @property
    def log_dir_default(self) -> Path:
        return self.resolve(Settings().log_dir)


PING_SLUG_NEEDS_BASE = "ping_slug: needs settings.ping_base (https://hc-ping.com/<your project's ping key>)"


def check_config(config: Config) -> None:
    """The rules between jobs and settings, for a config about to be written (a read checks them too)."""
    for job in config.jobs:
        if job.ping_slug and not config.settings.ping_base:
            raise ValidationError(job.name, PING_SLUG_NEEDS_BASE)


def _line_of_job(text: str, name: Any) -> int | None:
    if not isinstance(name, str):
        return None
    m = re.search(r'^\s*"?name"?\s*[=:]\s*"' + re.escape(name) + '"', text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else None


def convert(source: ConfigStore, target: ConfigStore, state: Mapping[str, Any] | None = None) -> Config:
    """Write `source`'s jobs and settings in `target`'s format; refuses to overwrite."""
    if target.path.exists():
        raise UserError(f"{target.display_path} already exists; remove it or name another file")
    config = source.load(create=False)
    with locked(target.lock_path):
        atomic_write(target.path, target.render(config, state))
    return config
