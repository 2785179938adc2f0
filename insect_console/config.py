"""The job config file: TOML (or the spec's JSON), read strictly, written atomically under a lock.

A file that does not parse or validate is reported in one line and never rewritten.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

from insect_console.errors import ConfigError, JobNotFound, UserError, ValidationError
from insect_console.fileio import atomic_write, check_private_file, locked
from insect_console.jobs import Job, check_place, make_job

DEFAULT_CONFIG_PATH = Path("config/batch_config.toml")
SCHEDULER_LOCK = "scheduler.lock"
"""In the runtime directory: held by the one scheduler of a config for its lifetime."""


def setting(default: Any, doc: str) -> Any:
    """A `[settings]` field with its documentation: the one place a setting is described. The
    header of a new config file and the README's settings table are made from these."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """The `[settings]` table. Relative paths are taken from the working directory."""

    log_dir: str = setting("logs/batch", "history files and per-run output; relative to the working directory")
    default_timeout: int = setting(1800, "seconds a run may take, for jobs without their own timeout")
    kill_grace: int = setting(10, "seconds between SIGTERM and SIGKILL when a run is ended")
    shutdown_grace: int = setting(30, "seconds running jobs get when the scheduler stops")
    max_parallel: int = setting(4, "runs at the same time; more wait for a free worker")
    failure_threshold: int = setting(3, "failures in a row before a notification")
    notify_command: str = setting("", "run on a notification (see Notifications); empty: none")
    output_tail_bytes: int = setting(65536, "bytes of stdout kept in a history record")
    history_keep_days: int = setting(365, "daily history files kept")
    output_keep_days: int = setting(30, "days per-run output files are kept ...")
    output_max_mb: int = setting(1024, "... and their total size at most, in MiB (oldest removed first)")
    output_max_run_mb: int = setting(64, "MiB of output one run's file may hold (cut, with a note, beyond)")
    latitude: float | None = setting(None, "the station's latitude in degrees, north positive (-90 to 90); needed by sun schedules and windows")
    longitude: float | None = setting(None, "the station's longitude in degrees, east positive (-180 to 180); needed with latitude")
    elevation: float = setting(0.0, "metres above sea level (the sun rises earlier seen from up high)")
    timezone: str = setting("", "IANA time zone fixed times follow (daily, weekly, cron, sun, windows), e.g. Europe/Berlin; empty: the system's")

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
                if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "kill_grace" else 1):
                    raise ValidationError(f"settings.{key}", f"must be a whole number ≥ {0 if key == 'kill_grace' else 1}, not {value!r}")
            elif not isinstance(value, str):
                raise ValidationError(f"settings.{key}", f"must be text, not {value!r}")
            values[key] = value
        if "log_dir" in values and not values["log_dir"].strip():
            raise ValidationError("settings.log_dir", "is empty; give a directory such as logs/batch")
        for key in ("log_dir", "notify_command"):
            if "\0" in values.get(key, ""):
                raise ValidationError(f"settings.{key}", "contains a NUL byte")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """As the config file holds it: a setting that is not set (None) is left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def documented(cls) -> list[tuple[str, Any, str]]:
        """(name, default, doc) of every setting, in the order they are declared."""
        return [(f.name, f.default, f.metadata.get("doc", "")) for f in dataclasses.fields(cls)]


_PLACE = {"latitude": 90, "longitude": 180, "elevation": None, "timezone": None}


def _place_setting(key: str, value: Any) -> Any:
    """The station's place and zone: numbers in range, a time zone that exists."""
    if key == "timezone":
        if not isinstance(value, str):
            raise ValidationError("settings.timezone", f"must be text, not {value!r}")
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
    if value is None:
        return "(unset)"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def settings_header() -> str:
    """The settings part of a new config file's header comment."""
    rows = [(f"{name} = {_toml_value(default)}", doc) for name, default, doc in Settings.documented()]
    width = max(len(left) for left, _ in rows)
    return "\n".join(f"#   {left:<{width}}  {doc}" for left, doc in rows)


def settings_table() -> str:
    """The README's settings table (a test keeps the README in step with it)."""
    lines = ["| setting | default | what it is |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{_toml_value(default)}` | {doc} |" for name, default, doc in Settings.documented()]
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
            return dataclasses.replace(self, jobs=self.jobs + (job,))
        self.job(replace)
        if job.name != replace and job.name in self.names():
            raise ValidationError("name", f"a job named {job.name!r} already exists")
        return dataclasses.replace(self, jobs=tuple(job if j.name == replace else j for j in self.jobs))

    def without_job(self, name: str) -> "Config":
        self.job(name)
        return dataclasses.replace(self, jobs=tuple(j for j in self.jobs if j.name != name))


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
#                  jitter = "5m" (a random delay in [0, 5m) on each due time)
# Run state (last run, status, failures) is kept in a separate .state.json file.
# This file is rewritten by `insect-console add/edit/...`: comments other than this header are not kept.

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

    # -- reading ---------------------------------------------------------

    def load(self, create: bool = True) -> Config:
        """Read and validate the config; create it with the default jobs if it is missing."""
        if not self.path.exists():
            if not create:
                raise ConfigError(f"{self.display_path}: no such config file")
            self._create_default()
        return self._read_and_parse()

    def _read_and_parse(self) -> Config:
        try:
            check_private_file(self.path, "config file")
            raw = self.path.read_bytes()
        except PermissionError as e:
            raise ConfigError(str(e)) from None
        except OSError as e:
            raise ConfigError(f"{self.display_path}: can't read: {e.strerror}") from None
        return self.parse(raw)

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
            line = _line_of_job(text, item.get("name") if isinstance(item, dict) else None)
            prefix = f"{where}: " + (f"line {line}: " if line else "") + f"{label}: "
            if not isinstance(item, dict):
                raise ConfigError(prefix + "must be a table")
            try:
                job = make_job(item)
                check_place(job, settings.latitude, settings.longitude)
            except ValidationError as e:
                raise ConfigError(prefix + str(e)) from None
            if job.name in seen:
                raise ConfigError(prefix + f"name: {job.name!r} is used by more than one job")
            seen.add(job.name)
            jobs.append(job)
        return Config(settings=settings, jobs=tuple(jobs))

    def legacy_state(self) -> dict[str, dict[str, Any]]:
        """Run-state fields found in a spec-format JSON config (used to seed the state file)."""
        if not self.is_json or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {
                j["name"]: {k: j.get(k) for k in ("last_run", "last_status", "error_count") if j.get(k) is not None}
                for j in data.get("jobs", [])
                if isinstance(j, dict) and isinstance(j.get("name"), str)
            }
        except (OSError, ValueError, AttributeError):
            return {}

    # -- writing ---------------------------------------------------------

    def render(self, config: Config, state: Mapping[str, Mapping[str, Any]] | None = None) -> bytes:
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
        doc = {"settings": config.settings.to_dict(), "jobs": [job.to_dict() for job in config.jobs]}
        return (toml_header() + tomli_w.dumps(doc)).encode()

    def update(self, change: Callable[[Config], Config], state: Mapping[str, Any] | None = None) -> Config:
        """Read, change and write the config under the config lock: no update is ever lost."""
        if not self.path.exists():
            self._create_default()
        with locked(self.lock_path):
            current = self.load(create=False)
            new = change(current)
            if new is not current:
                atomic_write(self.path, self.render(new, state if state is not None else self._run_state()))
            return new

    def _run_state(self) -> dict[str, Any] | None:
        """For a spec-format JSON config: the run state to write into it (the state file's, else the file's own)."""
        if not self.is_json:
            return None
        merged = self.legacy_state()
        try:
            merged.update(json.loads(self.state_path.read_bytes()).get("jobs", {}))
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

    def remove_job(self, name: str) -> Config:
        return self.update(lambda c: c.without_job(name))

    def set_enabled(self, name: str, enabled: bool) -> Config:
        def change(c: Config) -> Config:
            job = c.job(name)
            return c if job.enabled == enabled else c.with_job(job.replace(enabled=enabled), replace=name)

        return self.update(change)

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def log_dir_default(self) -> Path:
        return self.resolve(Settings().log_dir)


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
