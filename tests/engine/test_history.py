"""Run history: daily JSONL files, read newest first, filtered, malformed lines skipped and counted."""

from __future__ import annotations

import datetime as dt
import json
import queue

import pytest

from forkserver import cli_forked
from helpers import (
    BATCH_RESULT_FIELDS,
    assert_one_line_error,
    check_batch_result,
    cli,
    fast_settings,
    history_records,
    job,
    wait_file_cmd,
    wait_for,
    write_config,
)
from insect_console.clock import ManualClock
from insect_console.events import RunFinished, RunSkipped
from insect_console.history import HistoryQuery, HistoryReader, append_record, history_file, reverse_lines
from insect_console.records import finished

DAYS = [dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 4)]
JOBS = ["detect", "analyse", "backup"]
STATUS_CYCLE = ["success", "error", "success", "timeout"]


def record(name: str, when: dt.datetime, status: str = "success", n: int = 0) -> dict:
    """A two-second run's record, made by the engine's own constructor; `n` marks its output."""
    return finished(name, start=when, end=when + dt.timedelta(seconds=2), status=status, output=f"run {n}\n",
                    error=None if status == "success" else f"{status} #{n}", duration_s=2.0)


@pytest.fixture
def log_dir(tmp_path):
    """Three daily files (a gap on 03-03) with three runs each, written as the engine writes them."""
    directory = tmp_path / "logs" / "batch"
    n = 0
    for day in DAYS:
        for hour, name in zip((1, 2, 3), JOBS):
            append_record(directory, record(name, dt.datetime.combine(day, dt.time(hour)), STATUS_CYCLE[n % 4], n))
            n += 1
    (directory / "notes.txt").write_text("not history\n")
    (directory / "batch_2024.jsonl").write_text(json.dumps(record("x", dt.datetime(2024, 3, 1, 4))) + "\n")  # not a daily file name
    return directory


def order(records):
    return [int(r["output"].split()[1]) for r in records]


# -- the files ---------------------------------------------------------------------------------------

def test_records_go_to_the_file_of_the_day_they_started(tmp_path):
    start = dt.datetime(2024, 3, 1, 23, 59, 59).astimezone()
    path = append_record(tmp_path, record("late", start))
    assert path == history_file(tmp_path, dt.date(2024, 3, 1)) == tmp_path / "batch_20240301.jsonl"
    line = path.read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["job_name"] == "late"


@pytest.mark.parametrize("block", [1, 2, 3, 7, 16, 64, 4096])
@pytest.mark.parametrize("content", [b"a\nbb\n\nccc\n", b"a\nbb\nccc", b"only", b"\n\n\n", b"", "é\nñ\n".encode() * 50],
                         ids=["trailing-nl", "no-trailing-nl", "one-line", "blank", "empty", "multibyte"])
def test_reverse_lines_at_every_block_size(tmp_path, block, content):
    path = tmp_path / "f"
    path.write_bytes(content)
    expected = [line for line in content.split(b"\n") if line.strip()][::-1]
    assert list(reverse_lines(path, block=block)) == expected


def test_reverse_lines_of_a_missing_file(tmp_path):
    assert list(reverse_lines(tmp_path / "none")) == []


# -- the reader --------------------------------------------------------------------------------------

def test_newest_first_across_several_daily_files(log_dir):
    reader = HistoryReader(log_dir)
    records = reader.latest(HistoryQuery(limit=None))
    assert order(records) == list(range(8, -1, -1))
    assert reader.skipped == 0
    starts = [r["start_time"] for r in records]
    assert starts == sorted(starts, reverse=True)


def test_reader_filters(log_dir):
    def q(**kw):
        return order(HistoryReader(log_dir).latest(HistoryQuery(**{"limit": None, **kw})))

    assert q(job="analyse") == [7, 4, 1]
    assert q(status="error") == [5, 1]
    assert q(status="timeout", job="detect") == [3]
    assert q(since=dt.date(2024, 3, 2)) == [8, 7, 6, 5, 4, 3]
    assert q(since=dt.date(2024, 3, 3)) == [8, 7, 6]
    assert q(until=dt.date(2024, 3, 2)) == [5, 4, 3, 2, 1, 0]
    assert q(limit=4) == [8, 7, 6, 5]
    assert q(job="analyse", limit=2) == [7, 4]
    assert q(job="nobody") == []
    assert q(since=dt.date(2030, 1, 1)) == []


def test_limit_stops_reading_older_files(log_dir):
    reader = HistoryReader(log_dir)
    reader.latest(HistoryQuery(limit=2))
    assert [p.name for p in reader.files_read] == ["batch_20240304.jsonl"]


def test_malformed_lines_are_skipped_and_counted(log_dir):
    path = log_dir / "batch_20240302.jsonl"
    with open(path, "ab") as f:
        f.write(b"this is not json\n")
        f.write(b"[1, 2, 3]\n")
        f.write(b'{"no_job_name": true, "status": "success"}\n')
        f.write(b"\xff\xfe\n")
        f.write(b'{"job_name": "detect", "start_time": "2024-03-02T09:00:00", "sta')  # cut off by a power failure
    reader = HistoryReader(log_dir)
    records = reader.latest(HistoryQuery(limit=None))
    assert order(records) == list(range(8, -1, -1))
    assert reader.skipped == 5


def test_a_missing_log_dir_is_empty_history(tmp_path):
    reader = HistoryReader(tmp_path / "nothing")
    assert reader.latest() == [] and reader.skipped == 0


# -- the history command -------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path, log_dir):
    write_config(tmp_path, [job("detect", "true")])
    return tmp_path


def test_history_table_newest_first(project):
    done = cli_forked(project, "history")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["START", "JOB", "STATUS", "TOOK", "TRIGGER", "ERROR"]
    assert len(lines) == 10
    assert lines[1].split()[2] == "backup"          # the newest
    assert "2024-03-04" in lines[1] and "2024-03-01" in lines[-1]
    assert "timeout #3" in done.stdout
    assert done.stderr == ""


def test_history_json(project):
    done = cli(project, "history", "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert order(records) == list(range(8, -1, -1))
    for r in records:
        assert set(BATCH_RESULT_FIELDS) <= set(r)


@pytest.mark.parametrize(
    "args, expected",
    [(("--job", "analyse"), [7, 4, 1]), (("--status", "error"), [5, 1]), (("--since", "2024-03-04"), [8, 7, 6]),
     (("--limit", "2"), [8, 7]), (("--job", "detect", "--status", "success", "--limit", "1"), [6]),
     (("--since", "2024-03-02", "--job", "backup"), [8, 5])],
    ids=["job", "status", "since", "limit", "combined", "since-and-job"],
)
def test_history_filters(project, args, expected):
    done = cli_forked(project, "history", "--json", *args)
    assert done.returncode == 0, done.stderr
    assert order(json.loads(line) for line in done.stdout.splitlines()) == expected


def test_history_default_limit_is_20(tmp_path):
    directory = tmp_path / "logs" / "batch"
    for n in range(30):
        append_record(directory, record("detect", dt.datetime(2024, 3, 1, 0, n), n=n))
    write_config(tmp_path, [job("detect", "true")])
    done = cli_forked(tmp_path, "history", "--json")
    assert order(json.loads(line) for line in done.stdout.splitlines()) == list(range(29, 9, -1))


def test_history_counts_malformed_lines_on_stderr(project, log_dir):
    with open(log_dir / "batch_20240304.jsonl", "ab") as f:
        f.write(b"garbage\n{broken\n")
    done = cli_forked(project, "history", "--json")
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 9
    assert done.stderr.strip() == "(2 malformed history line(s) skipped)"


def test_history_with_no_runs(tmp_path):
    write_config(tmp_path, [job("detect", "true")])
    done = cli_forked(tmp_path, "history")
    assert (done.returncode, done.stdout.strip()) == (0, "no runs recorded")
    done = cli_forked(tmp_path, "history", "--job", "detect")
    assert done.stdout.strip() == "no runs recorded that match"


@pytest.mark.parametrize(
    "args, needle",
    [(("--since", "yesterday"), "--since"), (("--since", "2024-13-01"), "--since"), (("--limit", "0"), "--limit"),
     (("--limit", "many"), "--limit"), (("--status", "great"), "--status")],
)
def test_history_errors(project, args, needle):
    assert_one_line_error(cli_forked(project, "history", *args), needle)


def test_history_follows_the_log_dir_setting(tmp_path):
    directory = tmp_path / "var" / "runs"
    append_record(directory, record("detect", dt.datetime(2024, 3, 1, 1), n=0))
    write_config(tmp_path, [job("detect", "true")], settings={"log_dir": "var/runs"})
    done = cli_forked(tmp_path, "history", "--json")
    assert order(json.loads(line) for line in done.stdout.splitlines()) == [0]


# -- every record the engine writes has the spec's BatchResult fields --------------------------------------

def test_every_history_record_has_the_batch_result_fields(tmp_path, engines):
    release = tmp_path / "release"
    cfg = write_config(
        tmp_path,
        [
            job("ok", "echo fine"),
            job("bad", "sh -c 'exit 3'"),
            job("slow", "sleep 300", timeout=1),
            job("missing", "no-such-program-for-insect-tests"),
            job("held", wait_file_cmd(release), "interval", "60"),
            job("long", "sleep 300"),
        ],
        settings=fast_settings(),
    )
    clock = ManualClock(dt.datetime(2024, 1, 1, 10, 0, 0))
    engine = engines(cfg, base_dir=tmp_path, clock=clock)
    for name in ("ok", "bad", "slow", "missing"):
        engine.execute(engine.config.job(name))
    events: queue.Queue = queue.Queue()
    engine.subscribe(lambda e: events.put(e) if isinstance(e, (RunFinished, RunSkipped)) else None)
    engine.start()
    wait_for(lambda: clock.sleeping, what="the loop to sleep")  # the clock moves only while the loop sleeps
    clock.advance(60)                      # "held" starts
    wait_for(lambda: engine.active_runs().get("held") is not None and engine.active_runs()["held"].start_time is not None, what="held to start")
    wait_for(lambda: clock.sleeping, what="the loop to sleep")
    clock.advance(60)                      # and is still running: skipped
    assert isinstance(events.get(timeout=20), RunSkipped)
    release.touch()
    assert events.get(timeout=20).record["status"] == "success"
    engine.run_now("long")
    wait_for(lambda: engine.active_runs().get("long") is not None and engine.active_runs()["long"].pid, what="long to start")
    engine.stop(grace=0)                   # still running at shutdown: interrupted
    records = history_records(tmp_path / "logs" / "batch")
    assert sorted(r["status"] for r in records) == sorted(["success", "error", "timeout", "error", "skipped", "success", "interrupted"])
    for r in records:
        check_batch_result(r)
    by_status = {r["status"]: r for r in records}
    assert by_status["interrupted"]["job_name"] == "long"
    assert by_status["skipped"]["job_name"] == "held"


def test_a_record_appended_after_a_torn_line_is_still_readable(tmp_path):
    start = dt.datetime(2024, 3, 1, 1).astimezone()
    path = history_file(tmp_path, start.date())
    path.write_bytes(b'{"job_name": "detect", "start_time": "2024-03-01T00:59:00", "sta')  # the tail of a torn write
    append_record(tmp_path, record("after", start, n=1))
    reader = HistoryReader(tmp_path)
    assert [r["job_name"] for r in reader.latest()] == ["after"]
    assert reader.skipped == 1
