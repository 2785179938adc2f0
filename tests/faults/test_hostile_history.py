"""History files with what a power cut or a disk leaves in them: a long run of NUL bytes at the
end (sparse or written), a line longer than any record we write.

README promise: `history` and the console read "newest first ... memory stays bounded however
long the history is; malformed lines are skipped and counted". The figures (a 2 GB sparse tail:
time and peak RSS) are the benchmarks' business; these tests check behaviour only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from hypothesis import given, settings, strategies as st

from insect_console.history import MAX_LINE, HistoryQuery, HistoryReader, reverse_chunks

from .kit import LOG_REL, assert_one_line_error, cli, fast, job, note, write_config  # noqa: F401

SPARSE_TAIL = 256 * 1024 * 1024  # a modest sparse file: no disk space, but a reader that keeps the "line" copies it for minutes


def _record(name: str, n: int, day: dt.date) -> bytes:
    start = dt.datetime.combine(day, dt.time(1, 0, n)).astimezone().isoformat(timespec="milliseconds")
    rec = {"job_name": name, "start_time": start, "end_time": start, "status": "success", "output": f"run {n}\n", "error": None}
    return (json.dumps(rec, separators=(", ", ": ")) + "\n").encode()


def _history_with_a_sparse_tail(base: Path, records: int = 3) -> Path:
    log_dir = base / LOG_REL
    log_dir.mkdir(parents=True, mode=0o700)
    today = dt.date.today()
    path = log_dir / f"batch_{today:%Y%m%d}.jsonl"
    path.write_bytes(b"".join(_record("tick", n, today) for n in range(records)))
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + SPARSE_TAIL)  # what a power cut leaves: the size grew, the data never came
    return path


def test_a_sparse_nul_tail_is_skipped_and_counted_by_history(tmp_path: Path):
    write_config(tmp_path, [job("tick", "echo hi")], settings=fast())
    _history_with_a_sparse_tail(tmp_path)
    note(faults_injected=1)
    for extra in ([], ["--job", "tick"], ["--status", "success"]):
        done = cli(tmp_path, "history", "--json", "--limit", "10", *extra, timeout=60)
        assert done.returncode == 0, done.stderr
        outputs = [json.loads(line)["output"] for line in done.stdout.splitlines()]
        assert outputs == ["run 2\n", "run 1\n", "run 0\n"], extra
        assert done.stderr.strip() == "(1 malformed history line(s) skipped)", (extra, done.stderr)


def test_records_appended_after_a_nul_tail_are_read(tmp_path: Path):
    """After the power cut the next record starts on a line of its own, and both are read."""
    write_config(tmp_path, [job("tick", "echo after the cut")], settings=fast())
    _history_with_a_sparse_tail(tmp_path)
    note(faults_injected=1)
    assert cli(tmp_path, "run-job", "tick", timeout=60).returncode == 0
    done = cli(tmp_path, "history", "--json", "--limit", "10", timeout=60)
    assert done.returncode == 0, done.stderr
    outputs = [json.loads(line)["output"] for line in done.stdout.splitlines()]
    assert outputs == ["after the cut\n", "run 2\n", "run 1\n", "run 0\n"]
    assert "(1 malformed history line(s) skipped)" in done.stderr


def test_written_nul_runs_and_overlong_lines_between_records(tmp_path: Path):
    """Real (not sparse) NUL bytes and a line of garbage longer than any record: each is one
    malformed line, and the records on both sides of them are read, with any filter."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    day = dt.date(2025, 3, 8)
    data = (_record("a", 0, day) + b"\0" * (MAX_LINE + 5) + b"\n" + _record("b", 1, day)
            + b"x" * (MAX_LINE + 70_000) + b"\n" + _record("a", 2, day) + b"\0" * (MAX_LINE + 1))
    (log_dir / f"batch_{day:%Y%m%d}.jsonl").write_bytes(data)
    note(faults_injected=3)
    reader = HistoryReader(log_dir)
    assert [r["output"] for r in reader.records(HistoryQuery(limit=None))] == ["run 2\n", "run 1\n", "run 0\n"]
    assert reader.skipped == 3
    reader = HistoryReader(log_dir)
    assert [r["output"] for r in reader.records(HistoryQuery(job="a", limit=None))] == ["run 2\n", "run 0\n"]
    assert reader.skipped == 3


def _reference(data: bytes, max_line: int) -> tuple[list[bytes], int]:
    lines = [line for line in data.split(b"\n") if line.strip()][::-1]
    return [line for line in lines if len(line) <= max_line], sum(len(line) > max_line for line in lines)


_WHITESPACE = set(b" \t\n\r\x0b\x0c")
lines = st.lists(st.one_of(st.binary(max_size=12).map(lambda b: bytes(c for c in b if c not in _WHITESPACE)), st.sampled_from([b"", b"\0" * 40, b"y" * 25])), max_size=12)
"""Lines without whitespace: a blank line is an empty one."""


@settings(max_examples=150, deadline=None)
@given(lines, st.booleans(), st.integers(1, 30))
def test_reverse_chunks_drops_exactly_the_overlong_lines_one_byte_at_a_time(tmp_path_factory, content, newline_at_end, max_line):
    """Read a byte at a time, a line is dropped exactly when it is longer than `max_line`."""
    data = b"\n".join(content) + (b"\n" if newline_at_end and content else b"")
    path = tmp_path_factory.mktemp("rc") / "f"
    path.write_bytes(data)
    overlong = []
    got = [line for chunk in reverse_chunks(path, 1, max_line=max_line, on_overlong=lambda: overlong.append(1))
           for line in reversed(chunk.split(b"\n")) if line.strip()]
    want, dropped = _reference(data, max_line)
    assert got == want
    assert len(overlong) == dropped


@settings(max_examples=150, deadline=None)
@given(lines, st.integers(1, 64), st.integers(1, 30), st.integers(0, 3))
def test_reverse_chunks_bounds_with_any_block_and_holes(tmp_path_factory, content, block, max_line, hole_at):
    """Any block size, and a sparse hole inside the file: every line up to `max_line` is read in
    order, none longer than `max_line` + `block` is, and each one left out is counted."""
    data = b"\n".join(content) + b"\n"
    path = tmp_path_factory.mktemp("rc") / "f"
    with open(path, "wb") as f:
        cut = len(data) * hole_at // 3
        f.write(data[:cut])
        if hole_at:
            f.seek(1 << 16, os.SEEK_CUR)  # a 64 KiB hole: NUL bytes, inside whatever line is there
        f.write(data[cut:])
    full = path.read_bytes()
    overlong = []
    got = [line for chunk in reverse_chunks(path, block, max_line=max_line, on_overlong=lambda: overlong.append(1))
           for line in reversed(chunk.split(b"\n")) if line.strip()]
    every = [line for line in full.split(b"\n") if line.strip()][::-1]
    assert all(len(line) <= max_line + block for line in got)
    assert [line for line in every if len(line) <= max_line] == [line for line in got if len(line) <= max_line]
    assert len(got) + len(overlong) == len(every)
