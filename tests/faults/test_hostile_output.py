"""Hostile output: non-UTF-8 bytes, terminal escapes, a 100 MB line without a newline, 1 GB of output."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from .kit import (
    CLI_TIMEOUT,
    LOG_REL,
    TAG_ENV,
    Daemon,
    cli,
    describe,
    fast,
    job,
    kill_all,
    note,
    output_files,
    processes_with_env,
    strict_records,
    wait_for,
    write_config,
)

TAIL = 4096
RSS_LIMIT = 300 * 1024 * 1024


def test_non_utf8_output_is_recorded_safely(tmp_path: Path):
    write_config(
        tmp_path,
        [job("bytes", r"printf '\377\376 caf\303\251 \303\050 end\n'; printf 'bad \377 err\n' >&2; exit 3", shell=True)],
        settings=fast(),
    )
    done = cli(tmp_path, "run-job", "bytes", timeout=CLI_TIMEOUT)
    note(faults_injected=1)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    log_dir = tmp_path / LOG_REL
    (record,) = strict_records(log_dir)  # the history file is valid UTF-8 JSON
    assert record["status"] == "error"
    assert record["output"] == "\ufffd\ufffd caf\u00e9 \ufffd( end\n"
    assert record["error"] == "exit status 3: bad \ufffd err"
    raw = Path(record["output_file"]).read_bytes()  # the output file keeps the bytes as they were
    assert b"\xff\xfe caf\xc3\xa9 \xc3( end\n" in raw and b"bad \xff err\n" in raw
    for cmd in (["history"], ["history", "--json"], ["list"], ["list", "--json"]):
        shown = cli(tmp_path, *cmd, timeout=CLI_TIMEOUT)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, (cmd, shown.stderr)
    note(runs_recorded=1)


ESCAPES = r"printf '\033]0;pwned\007\033[2J\033[31mred\033[0m\n'; printf '\033[2J\033]52;c;cHduZWQ=\007 boom\n' >&2; exit 1"


def test_terminal_escapes_are_stored_escaped(tmp_path: Path):
    write_config(tmp_path, [job("ansi", ESCAPES, shell=True)], settings=fast())
    done = cli(tmp_path, "run-job", "ansi", timeout=CLI_TIMEOUT)
    note(faults_injected=1, runs_recorded=1)
    assert done.returncode == 1
    log_dir = tmp_path / LOG_REL
    (record,) = strict_records(log_dir)
    assert "\x1b[2J" in record["output"]  # kept as data...
    for path in log_dir.glob("batch_*.jsonl"):
        assert b"\x1b" not in path.read_bytes() and b"\x07" not in path.read_bytes()  # ...escaped in JSON
    shown = cli(tmp_path, "history", "--json", timeout=CLI_TIMEOUT)
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout


def test_history_table_does_not_pass_escapes_to_the_terminal(tmp_path: Path):
    write_config(tmp_path, [job("ansi", ESCAPES, shell=True)], settings=fast())
    cli(tmp_path, "run-job", "ansi", timeout=CLI_TIMEOUT)
    shown = cli(tmp_path, "history", timeout=CLI_TIMEOUT)
    assert shown.returncode == 0
    assert "ansi" in shown.stdout
    assert not any(ch in shown.stdout for ch in "\x1b\x07\x9b"), repr(shown.stdout)


# -- floods: one daemon, a 100 MB line and 1 GB of lines at once ---------------------------------

ONCE = "[ -e {flag} ] && exit 0; touch {flag}; "
LONG_LINE = ONCE.format(flag="longline.done") + "head -c 100M /dev/zero | tr '\\0' a"
GIGABYTE = ONCE.format(flag="gigabyte.done") + "yes \"$(head -c 16383 /dev/zero | tr '\\0' b)\" | head -c 1G"


@dataclass
class Flood:
    base: Path
    records: dict[str, dict] = field(default_factory=dict)
    max_rss: int = 0
    output_bytes: int = 0
    output_max_mb: int = 200  # well under the 1.1 GB the two runs write
    rc: int | None = None


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("flood")
    tag = uuid.uuid4().hex
    result = Flood(base)
    write_config(
        base,
        [job("longline", LONG_LINE, "interval", "1", shell=True), job("gigabyte", GIGABYTE, "interval", "1", shell=True)],
        settings=fast(output_tail_bytes=TAIL, output_max_mb=result.output_max_mb),
    )
    log_dir = base / LOG_REL
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TAG_ENV, tag)
        daemon = Daemon(base).started()
        done = threading.Event()

        def sample() -> None:
            proc = psutil.Process(daemon.pid)
            while not done.is_set():
                try:
                    result.max_rss = max(result.max_rss, proc.memory_info().rss)
                except psutil.Error:
                    return
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            def finished():
                found: dict[str, dict] = {}
                for r in strict_records(log_dir):  # the first run of each is the flood; later ones exit at once
                    if r["status"] != "skipped":
                        found.setdefault(r["job_name"], r)
                return found if {"longline", "gigabyte"} <= set(found) else None

            result.records = wait_for(finished, timeout=110, interval=0.2, what="the two flood runs")
            result.output_bytes = sum(p.stat().st_size for p in output_files(log_dir))
            result.rc = daemon.terminate()
        finally:
            done.set()
            sampler.join()
            daemon.stop()
            for p in output_files(log_dir):  # don't leave a gigabyte behind in the kept tmp dirs
                p.unlink()
            leftovers = processes_with_env(TAG_ENV, tag)
            kill_all(leftovers)
    note(faults_injected=2, runs_recorded=len(strict_records(log_dir)))
    assert not leftovers, describe(leftovers)
    return result


def test_flood_runs_succeed(flood: Flood):
    assert flood.rc == 0
    assert {r["status"] for r in flood.records.values()} == {"success"}


def test_flood_record_output_is_a_bounded_tail(flood: Flood):
    line = flood.records["longline"]
    assert line["output"] == "a" * TAIL
    lines = flood.records["gigabyte"]
    assert 0 < len(lines["output"].encode()) <= TAIL
    assert set(lines["output"]) <= {"b", "\n"}
    for record in flood.records.values():
        assert len(json.dumps(record)) < TAIL + 2048


def test_flood_memory_is_bounded(flood: Flood):
    assert 0 < flood.max_rss < RSS_LIMIT, f"daemon RSS reached {flood.max_rss / 2**20:.0f} MiB"


def test_flood_stored_output_is_bounded(flood: Flood):
    assert flood.output_bytes <= flood.output_max_mb * 2**20, f"{flood.output_bytes / 2**20:.0f} MiB of output files"
