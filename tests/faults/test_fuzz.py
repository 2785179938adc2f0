"""Hypothesis fuzzing: the validator, the config loader (random TOML and JSON), the history reader
(random lines) and the CLI (random argv). Never an unexpected exception: a clear UserError /
ValidationError / ConfigError, or a correct result.

Runs are derandomized by default (the same inputs on every CI run, so no fuzz test is flaky);
`HYPOTHESIS_PROFILE=explore` searches with fresh random inputs and 10x more examples.

The bugs these tests found (K1-K5 below) have regression examples of their own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insect_console.cli import main as cli_main
from insect_console.clock import ManualClock
from insect_console.config import Config, ConfigStore, Settings
from insect_console.scheduling import next_run_preview
from insect_console.errors import ConfigError, UserError, ValidationError
from insect_console.history import HistoryQuery, HistoryReader, reverse_lines
from insect_console.integrations import cron_schedule
from insect_console.jobs import Job, make_job, normalize_schedule, parse_schedule, validate_command

from . import kit
from .kit import note

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("explore", max_examples=2000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
FEWER = settings(PROFILE, max_examples=max(PROFILE.max_examples // 2, 10))

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
CLOCK_START = dt.datetime(2025, 3, 8, 1, 30)

# -- generators --------------------------------------------------------------------------------

# Bugs found by these tests (fixed; see test_validator_regressions):
#   K1 jobs.validate_timeout: a string of non-decimal digits ("²") passed isdigit() but not int()
#   K2 jobs.interval_seconds / validate_timeout: more than 4300 digits -> ValueError from int()
#   K3 an interval of thousands of years was accepted, then scheduling it overflowed
#   K4 jobs.make_job accepted a cwd with a NUL byte; the run then raised ValueError
#   K5 config.Settings.from_dict accepted a log_dir with a NUL byte; every later use raised ValueError
ANY_CHARS = st.characters(blacklist_categories=("Cs",))
safe_text = any_text = st.text(ANY_CHARS, max_size=24)
long_digits = st.text(st.sampled_from("0123456789"), min_size=4000, max_size=5000)

names = st.one_of(st.from_regex(NAME_RE, fullmatch=True), safe_text, st.sampled_from(["../x", "..", "a/b", ".x", "-x", "x" * 65, ""]))
commands = st.one_of(
    st.sampled_from(["true", "echo 'a b' \"c\"", "ls | wc", "echo $HOME", "a && b", "x > y", "'unterminated", "  ", "ls *.py", "~/bin/x"]),
    safe_text,
)
types = st.one_of(st.sampled_from(["interval", "daily", "weekly", " Daily ", "hourly"]), safe_text, st.integers())
times_safe = st.one_of(
    st.from_regex(r"\s?\d{1,7}\s?[smhdSMHDx]?\s?", fullmatch=True),
    st.from_regex(r"\d{8,25}[smhd]?", fullmatch=True),
    long_digits,
    st.from_regex(r"\d{1,3}:\d{1,3}(:\d{1,3})?", fullmatch=True),
    st.from_regex(r"(?i)(mon|tue|wed|thu|fri|sat|sun|sunday|monday|funday)( +\d{1,2}:\d{2}(:\d{2})?)?", fullmatch=True),
    st.integers(min_value=-5, max_value=10**7),
    safe_text,
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**6), max_value=10**6), st.floats(allow_nan=False), safe_text)
timeouts_safe = st.one_of(
    st.none(), st.integers(min_value=-5, max_value=10**30), st.from_regex(r"\s?\d{1,25}[smhd]?\s?", fullmatch=True),
    st.sampled_from(["²", "①", "٣", "³⁰"]), long_digits, scalars,
)
envs = st.one_of(st.dictionaries(safe_text, safe_text, max_size=3), scalars)
extra_keys = st.dictionaries(st.sampled_from(["last_run", "last_status", "error_count", "when", "Name"]), scalars, max_size=2)


GOOD_TIMES = {  # ASCII digits: the wild values bring the other digits of Unicode
    "interval": st.one_of(st.from_regex(r"[0-9]{1,6}\s?[smhdSMHD]?", fullmatch=True), st.integers(1, 10**6)),
    "daily": st.from_regex(r"([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?", fullmatch=True),
    "weekly": st.from_regex(r"(?i)(mon|tue|wed|thu|fri|sat|sun|sunday|monday)( ([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?)?", fullmatch=True),
}
env_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="="), min_size=1, max_size=8)


@st.composite
def job_dicts(draw, times=times_safe, timeouts=timeouts_safe, cwds=st.one_of(st.none(), safe_text)):
    """A mostly valid job; half the time one field is replaced by something wild."""
    kind = draw(st.sampled_from(["interval", "daily", "weekly"]))
    data: dict[str, Any] = {
        "name": draw(st.from_regex(NAME_RE, fullmatch=True)),
        "command": draw(st.sampled_from(["true", "echo hi", "python main.py --mode single", "sh -c 'a | b'", "printf '%s\\n' x"])),
        "schedule_type": kind,
        "schedule_time": draw(GOOD_TIMES[kind]),
    }
    optional = {
        "enabled": st.booleans(), "timeout": st.one_of(st.none(), st.integers(1, 10**6), st.from_regex(r"\d{1,5}[smh]?", fullmatch=True)),
        "shell": st.booleans(), "cwd": st.one_of(st.none(), st.from_regex(r"[a-z /._-]{1,12}", fullmatch=True)),
        "env": st.dictionaries(env_names, safe_text, max_size=3),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            data[key] = draw(strategy)
    wild = {
        "name": names, "command": commands, "schedule_type": types, "schedule_time": times, "enabled": scalars,
        "timeout": timeouts, "shell": scalars, "cwd": cwds, "env": envs,
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(wild)))
        data[key] = draw(wild[key])
    if draw(st.integers(0, 9)) == 0:
        data.update(draw(extra_keys))
    return data


# -- the invariants of an accepted job -----------------------------------------------------------


def check_job(job: Job) -> None:
    assert NAME_RE.fullmatch(job.name) and ".." not in Path(job.name).parts and "/" not in job.name
    base = Path("/srv/station/logs/batch/output/20250308")
    assert (base / f"{job.name}-000000-abcdef.log").resolve().parent == base  # can't escape the log dir
    argv = job.argv()
    assert argv and all(isinstance(a, str) and "\0" not in a for a in argv)
    if not job.shell:
        assert "\0" not in job.command
    assert job.cwd is None or (isinstance(job.cwd, str) and "\0" not in job.cwd)
    assert all("\0" not in k + v and "=" not in k and k for k, v in job.env.items())
    assert job.timeout is None or (isinstance(job.timeout, int) and job.timeout >= 1)
    assert normalize_schedule(job.schedule_type, job.schedule_time) == (job.schedule_type, job.schedule_time)
    assert make_job(job.to_dict()) == job
    when = parse_schedule(job.schedule_type, job.schedule_time)
    assert when.describe()
    nxt = next_run_preview(job, ManualClock(CLOCK_START), {})
    assert (nxt is None) == (not job.enabled)
    if nxt is not None:
        assert nxt > CLOCK_START
    try:
        fields = cron_schedule(job)
        assert len(fields.split()) == 5
    except UserError as e:
        assert str(e)


def check_user_error(e: UserError) -> None:
    message = str(e)
    assert message and "\n" not in message, repr(message)


def _try_make_job(data: dict[str, Any]) -> None:
    note(fuzz_inputs=1)
    try:
        job = make_job(data)
    except ValidationError as e:
        check_user_error(e)
        assert e.field
        return
    check_job(job)
    note(fuzz_accepted=1)


@FEWER
@given(job_dicts())
def test_fuzz_make_job(data):
    _try_make_job(data)


@st.composite
def risky_job_dicts(draw):
    """Valid jobs but for one of the fields the bugs K1-K4 lived in, drawn from everything."""
    data = kit.job("a", "true", "interval", "60")
    key = draw(st.sampled_from(["schedule_time", "timeout", "cwd"]))
    data[key] = draw({
        "schedule_time": st.one_of(st.from_regex(r"\d{1,25}[smhd]?", fullmatch=True), long_digits, any_text),
        "timeout": st.one_of(any_text, st.from_regex(r"\d{1,25}", fullmatch=True), long_digits),
        "cwd": st.one_of(any_text.map(lambda t: t + "\0"), any_text),
    }[key])
    return data


@FEWER
@given(risky_job_dicts())
def test_fuzz_make_job_risky_fields(data):
    _try_make_job(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"timeout": "²"}, id="K1-superscript-timeout"),
        pytest.param({"schedule_time": "9" * 5000}, id="K2-5000-digit-interval"),
        pytest.param({"timeout": "9" * 5000}, id="K2-5000-digit-timeout"),
        pytest.param({"schedule_time": "99999999999999999999"}, id="K3-huge-interval"),
        pytest.param({"schedule_time": "99999999999d"}, id="K3-huge-interval-days"),
        pytest.param({"schedule_time": "10000000d"}, id="K3-27000-years"),
        pytest.param({"cwd": "a\0b"}, id="K4-nul-in-cwd"),
    ],
)
def test_validator_regressions(data):
    """Each of these once ended in ValueError/OverflowError or in a job that could not run."""
    _try_make_job({**kit.job("a", "true", "interval", "60"), **data})


@PROFILE
@given(st.one_of(types, st.none()), st.one_of(times_safe, st.none(), st.booleans()))
def test_fuzz_normalize_schedule(kind, when):
    note(fuzz_inputs=1)
    try:
        k, t = normalize_schedule(kind, when)
    except ValidationError as e:
        check_user_error(e)
        assert e.field in ("schedule_type", "schedule_time")
        return
    assert k in ("interval", "daily", "weekly")
    assert normalize_schedule(k, t) == (k, t)
    parse_schedule(k, t)


@PROFILE
@given(st.one_of(commands, any_text, st.binary(max_size=10).map(lambda b: b.decode("latin-1"))), st.booleans())
def test_fuzz_validate_command(command, shell):
    note(fuzz_inputs=1)
    try:
        out = validate_command(command, shell)
    except ValidationError as e:
        check_user_error(e)
        assert e.field == "command"
        return
    assert out == command and "\0" not in command and command.strip()
    job = Job("x", command, "interval", "60", shell=shell)
    argv = job.argv()
    assert argv
    if not shell:
        assert not any(tok in ("|", "&&", ";", ">", "<") for tok in argv)


# -- the config loader ---------------------------------------------------------------------------

setting_values = st.one_of(st.integers(min_value=-3, max_value=10**6), st.booleans(), safe_text, st.floats(allow_nan=False))
settings_tables = st.dictionaries(st.sampled_from([f.name for f in Settings.__dataclass_fields__.values()] + ["bogus"]), setting_values, max_size=4)


def _toml_safe(value: Any) -> Any:
    """TOML has no null: drop None (and don't let floats overflow tomli-w)."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_safe(v) for v in value if v is not None]
    return value


good_settings = st.fixed_dictionaries({}, optional={
    "log_dir": st.sampled_from(["logs/batch", "/var/log/insect", "l o g s"]), "default_timeout": st.integers(1, 10**5),
    "kill_grace": st.integers(0, 60), "shutdown_grace": st.integers(1, 600), "max_parallel": st.integers(1, 16),
    "output_tail_bytes": st.integers(1, 10**6), "history_keep_days": st.integers(1, 3650), "notify_command": st.sampled_from(["", "logger x"]),
})


@st.composite
def config_docs(draw, jobs=job_dicts()):
    """Mostly well-formed documents (so the loader's success path is fuzzed too), some wild."""
    doc: dict[str, Any] = {}
    roll = draw(st.integers(0, 9))
    if roll < 6:
        doc["settings"] = draw(good_settings if roll < 4 else settings_tables)
    elif roll == 6:
        doc["settings"] = draw(scalars)
    roll = draw(st.integers(0, 9))
    if roll < 7:
        doc["jobs"] = draw(st.lists(jobs, max_size=4, unique_by=lambda j: str(j.get("name"))))
    elif roll < 9:
        doc["jobs"] = draw(st.lists(st.one_of(jobs, scalars), max_size=3))
    else:
        doc["jobs"] = draw(scalars)
    if draw(st.integers(0, 9)) == 0:
        doc[draw(safe_text)] = draw(scalars)
    return doc


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """Truncate, cut out, or overwrite a piece of the bytes (a torn write, a bad edit)."""
    kind = draw(st.sampled_from(["keep", "keep", "keep", "truncate", "cut", "insert"]))
    if not data or kind == "keep":
        return data
    i = draw(st.integers(0, len(data) - 1))
    if kind == "truncate":
        return data[:i]
    j = draw(st.integers(i, min(len(data), i + 20)))
    if kind == "cut":
        return data[:i] + data[j:]
    return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]


def _check_parse(store: ConfigStore, raw: bytes, strict_settings: bool = True) -> None:
    note(fuzz_inputs=1)
    try:
        config = store.parse(raw)
    except ConfigError as e:
        check_user_error(e)
        assert str(e).startswith(store.display_path)
        return
    assert isinstance(config, Config)
    note(fuzz_accepted=1)
    s = config.settings
    text_settings = [name for name, default, _doc in Settings.documented() if isinstance(default, str)]
    for name, value in s.to_dict().items():
        if name in text_settings:
            assert isinstance(value, str)
        elif name in ("latitude", "longitude", "elevation"):  # the station's place: degrees in range, metres
            limit = {"latitude": 90, "longitude": 180, "elevation": 9000}[name]
            assert isinstance(value, float) and -limit <= value <= limit
        else:
            assert isinstance(value, int) and not isinstance(value, bool) and value >= (0 if name in ("kill_grace", "watchdog_sec") else 1)
    assert s.log_dir.strip()
    assert "\0" not in "".join(getattr(s, name) for name in text_settings), "K5"
    assert len({j.name for j in config.jobs}) == len(config.jobs)
    for job in config.jobs:
        check_job(job)
    assert store.parse(store.render(config)) == config  # what we write, we read back


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("parse")
    return ConfigStore(base / "config/batch_config.toml", base), ConfigStore(base / "config/batch_config.json", base)


@PROFILE
@given(config_docs(), st.data())
def test_fuzz_config_toml(stores, doc, data):
    try:
        raw = tomli_w.dumps(_toml_safe(doc)).encode()
    except (TypeError, ValueError):
        raw = json.dumps(doc).encode()  # not TOML-serialisable: feed the JSON text to the TOML reader
    _check_parse(stores[0], data.draw(mutated(raw)))


@PROFILE
@given(config_docs(), st.data())
def test_fuzz_config_json(stores, doc, data):
    raw = json.dumps(doc, ensure_ascii=data.draw(st.booleans())).encode()
    _check_parse(stores[1], data.draw(mutated(raw)))


@FEWER
@given(st.binary(max_size=200))
def test_fuzz_config_random_bytes(stores, raw):
    _check_parse(stores[0], raw)
    _check_parse(stores[1], raw)


@pytest.mark.parametrize("key", ["log_dir", "notify_command"])
def test_loader_regression_nul_in_settings(stores, key):
    """K5: a NUL byte in a path setting once passed the loader (then `history` and `run-job`
    ended in a ValueError traceback)."""
    raw = f'[settings]\n{key} = "lo\\u0000gs"\n'.encode()
    with pytest.raises(ConfigError):
        stores[0].parse(raw)
    _check_parse(stores[0], raw, strict_settings=True)


# -- the history reader ------------------------------------------------------------------------

records = st.fixed_dictionaries(
    {"job_name": st.one_of(st.sampled_from(["tick", "nightly", "a.b-c_9"]), safe_text, st.integers()), "status": st.one_of(st.sampled_from(["success", "error", "timeout"]), safe_text, st.none())},
    optional={"output": any_text, "start_time": safe_text, "error": st.one_of(st.none(), any_text)},
)


@st.composite
def history_lines(draw):
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        record = draw(records)
        line = json.dumps(record, ensure_ascii=draw(st.booleans())).encode()
        if kind == 2:  # a torn record
            line = line[: draw(st.integers(0, len(line)))]
        return line.replace(b"\n", b"")
    if kind == 3:
        return draw(st.sampled_from([b"", b"   ", b"\r", b"{}", b"[]", b"null", b"\xef\xbb\xbf{}", b"{" * 3000, b"\x1b[2J", b"\xff\xfe"]))
    return draw(st.binary(max_size=30)).replace(b"\n", b"")


JOB_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
"""What a job may be called (the spec's rule), so its JSON form is the same with or without ensure_ascii."""


def _file_lines(log_dir: Path, day_offset: int) -> list[bytes]:
    """The non-blank lines of one day's file, newest first."""
    day = dt.date(2025, 3, 8) - dt.timedelta(days=day_offset)
    data = (log_dir / f"batch_{day:%Y%m%d}.jsonl").read_bytes()
    return [l for l in reversed(data.split(b"\n")) if l.strip()]


def _expected(line: bytes) -> dict | None | str:
    """'blank' for lines every reader ignores, a record, or None for a malformed line."""
    if not line.strip():
        return "blank"
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict) and isinstance(value.get("job_name"), str) and isinstance(value.get("status"), str):
        return value
    return None


@PROFILE
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(history_lines(), max_size=12), st.booleans()), max_size=4), st.integers(1, 100), st.one_of(st.none(), st.integers(1, 20)))
def test_fuzz_history_reader(tmp_path, files, block, limit):
    note(fuzz_inputs=1)
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        log_dir = Path(d)
        expected, malformed, by_day = [], 0, {}
        for day_offset, lines, newline_at_end in files:
            by_day.setdefault(day_offset, []).append((lines, newline_at_end))
        for day_offset in sorted(by_day):  # later files overwrite: keep the last per day
            lines, newline_at_end = by_day[day_offset][-1]
            day = dt.date(2025, 3, 8) - dt.timedelta(days=day_offset)
            data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
            path = log_dir / f"batch_{day:%Y%m%d}.jsonl"
            path.write_bytes(data)
            assert list(reverse_lines(path, block=block)) == [l for l in data.split(b"\n") if l.strip()][::-1]
            for line in reversed(data.split(b"\n")):
                got = _expected(line)
                if got is None:
                    malformed += 1
                elif got != "blank":
                    expected.append(got)
        reader = HistoryReader(log_dir)
        assert list(reader.records(HistoryQuery(limit=None))) == expected
        assert reader.skipped == malformed
        # by job: blocks without the job's name are passed over unread; the same records come
        # out, and every malformed line that names the job is still counted
        for name in {r["job_name"] for r in expected[:3] if isinstance(r["job_name"], str) and re.fullmatch(JOB_NAME, r["job_name"])}:
            needle = json.dumps(name, ensure_ascii=False).encode()
            lines = [l for d in sorted(by_day) for l in _file_lines(log_dir, d)]
            naming_it = sum(1 for l in lines if needle in l and _expected(l) is None)
            reader = HistoryReader(log_dir, block=block)
            assert list(reader.records(HistoryQuery(job=name, limit=None))) == [r for r in expected if r["job_name"] == name]
            assert naming_it <= reader.skipped <= malformed
        if limit is not None:
            assert HistoryReader(log_dir).latest(HistoryQuery(limit=limit)) == expected[:limit]


# -- the CLI ------------------------------------------------------------------------------------

COMMANDS = ["list", "add", "edit", "remove", "enable", "disable", "cron", "history", "systemd", "run-job", "convert"]
TOKENS = [
    "tick", "nightly", "nope", "hourly_detection", "../x",
    "--type", "--time", "--timeout", "--shell", "--no-shell", "--cwd", "--disabled", "--json", "--job", "--status", "--since",
    "--limit", "--python", "--user", "--rename", "--command", "--local", "--help", "--version", "-c", "-l", "--no-ui", "--",
    "interval", "daily", "weekly", "60", "1h", "02:00", "sun 03:00", "25:00", "-1", "0", "default", "2024-01-01", "success",
    "x", "echo hi", "ls | wc", "spec.json", "out.toml", "bad.toml", "other.toml", "DEBUG", "",
]
# relative, harmless paths only: a fuzzed `-c /etc/x.toml add ...` as root would write anywhere
cli_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/~"), max_size=12).filter(lambda t: ".." not in t)
GOOD_JOBS = [kit.job("tick", "true", "interval", "60"), kit.job("nightly", "echo night", "daily", "02:00", enabled=False)]
SPEC_JSON = json.dumps({"jobs": [{"name": "tick", "command": "true", "schedule_type": "interval", "schedule_time": "3600", "enabled": True, "last_run": None, "last_status": None, "error_count": 0}]})


@st.composite
def argvs(draw):
    prefix = []
    if draw(st.booleans()):
        prefix += ["-c", draw(st.sampled_from(["config/batch_config.toml", "spec.json", "bad.toml", "missing/x.toml", "other.toml"]) | cli_text)]
    if draw(st.integers(0, 4)) == 0:
        prefix += ["-l", draw(st.sampled_from(["debug", "INFO", "loud"]))]
    args = draw(st.lists(st.one_of(st.sampled_from(TOKENS), cli_text), max_size=7))
    return prefix + [draw(st.sampled_from(COMMANDS))] + args


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-template")
    kit.write_config(base, GOOD_JOBS, settings={"kill_grace": 1, "default_timeout": 20})
    for rel, text in (("spec.json", SPEC_JSON), ("bad.toml", "[[jobs]\nname=")):
        (base / rel).write_text(text)
        os.chmod(base / rel, 0o600)
    return base


@pytest.fixture
def quiet_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@PROFILE
@given(argvs())
def test_fuzz_cli(tmp_path, cli_template, quiet_logging, monkeypatch, argv):
    note(fuzz_inputs=1)
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        work = Path(d) / "w"
        shutil.copytree(cli_template, work)
        monkeypatch.chdir(work)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli_main(argv)
            except SystemExit as e:  # --help and --version
                assert e.code in (0, None), (argv, e.code, err.getvalue())
                rc = 0
        monkeypatch.chdir(tmp_path)
    stderr = err.getvalue()
    assert "Traceback" not in stderr, (argv, stderr)
    assert rc in (0, 1, 2, 75, 124), (argv, rc, stderr)
    if rc == 2:
        mine = [line for line in stderr.splitlines() if line.startswith("insect-console:")]
        assert len(mine) == 1, (argv, stderr)
