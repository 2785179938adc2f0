"""One run against real commands: results, errors, process-tree kills, and awkward output."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from pathlib import Path

from helpers import (
    check_batch_result,
    history_records,
    is_alive,
    job,
    kill_processes,
    py_cmd,
    run_survivors,
    wait_file_cmd,
    wait_for,
    write_config,
)
from insect_console.jobs import make_job
from insect_console.runner import MAX_LINE, JobRun


class Run:
    """A JobRun with everything it reported: the outcome, the lines per stream, the output file."""

    def __init__(self, tmp_path: Path, command: str, *, shell: bool = False, timeout: float = 60, kill_grace: float = 1,
                 tail_bytes: int = 65536, cwd: str | None = None, env: dict | None = None, keep_lines: bool = True) -> None:
        data = job("job", command, "interval", "60", shell=shell)
        if cwd is not None:
            data["cwd"] = cwd
        if env:
            data["env"] = env
        self.job = make_job(data)
        self.run_id = f"test-{uuid.uuid4().hex[:12]}"
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.chunks = 0
        self.longest = 0
        self.output_file = tmp_path / "out" / f"{self.run_id}.log"
        self.keep_lines = keep_lines
        self.run = JobRun(self.job, run_id=self.run_id, timeout=timeout, kill_grace=kill_grace, output_file=self.output_file,
                          tail_bytes=tail_bytes, on_output=self._on_output, base_dir=tmp_path)
        self.first_line = threading.Event()

    def _on_output(self, stream: str, lines: list[str]) -> None:
        self.chunks += len(lines)  # pieces handed on (a batch may carry several)
        self.longest = max(self.longest, *(len(line) for line in lines))
        if self.keep_lines:
            self.lines[stream].extend(lines)
        self.first_line.set()

    def execute(self):
        self.outcome = self.run.execute()
        return self.outcome


def run(tmp_path, command, **kwargs):
    r = Run(tmp_path, command, **kwargs)
    r.execute()
    return r


# -- results ---------------------------------------------------------------------------------------

def test_success(tmp_path):
    r = run(tmp_path, "echo hello world")
    o = r.outcome
    assert (o.status, o.exit_code, o.error) == ("success", 0, None)
    assert o.output == "hello world\n"
    assert r.lines["stdout"] == ["hello world"]
    assert r.output_file.read_text() == "hello world\n"
    assert o.end >= o.start and o.pid


def test_exit_status_3_is_an_error_with_stderr_in_the_message(tmp_path):
    r = run(tmp_path, "echo partial; echo 'disk full' >&2; exit 3", shell=True)
    o = r.outcome
    assert (o.status, o.exit_code) == ("error", 3)
    assert o.error.startswith("exit status 3")
    assert "disk full" in o.error
    assert o.output == "partial\n"  # the record's output is stdout
    assert r.lines["stderr"] == ["disk full"]


def test_missing_binary(tmp_path):
    r = run(tmp_path, "no-such-program-for-insect-tests --flag")
    o = r.outcome
    assert (o.status, o.exit_code, o.pid) == ("error", None, None)
    assert o.error == "command not found: no-such-program-for-insect-tests"


def test_not_executable(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    r = run(tmp_path, str(script))
    assert r.outcome.status == "error"
    assert r.outcome.error.startswith("permission denied")


def test_missing_working_directory(tmp_path):
    r = run(tmp_path, "true", cwd="no/such/dir")
    assert r.outcome.status == "error"
    assert r.outcome.error == f"working directory not found: {tmp_path / 'no/such/dir'}"


def test_relative_cwd_env_and_job_name_reach_the_command(tmp_path):
    (tmp_path / "work").mkdir()
    code = "import os; print(os.getcwd()); print(os.environ['GREETING']); print(os.environ['INSECT_CONSOLE_JOB'])"
    r = run(tmp_path, py_cmd(code), cwd="work", env={"GREETING": "bonjour"})
    assert r.outcome.status == "success"
    assert r.lines["stdout"] == [str(tmp_path / "work"), "bonjour", "job"]


def test_default_cwd_is_the_base_dir_and_stdin_is_empty(tmp_path):
    r = run(tmp_path, py_cmd("import os,sys; print(os.getcwd()); print(repr(sys.stdin.read()))"))
    assert r.lines["stdout"] == [str(tmp_path), "''"]


def test_killed_by_a_signal(tmp_path):
    r = run(tmp_path, "kill -KILL $$", shell=True)
    assert r.outcome.status == "error"
    assert r.outcome.error.startswith("killed by signal SIGKILL")


# -- ending process trees ---------------------------------------------------------------------------

def _bg_pids(r: Run) -> list[int]:
    return [int(x) for x in r.lines["stdout"] if x.strip().isdigit()]


def _assert_tree_gone(r: Run, pids: list[int]) -> None:
    survivors = run_survivors(r.run_id)
    kill_processes(survivors)
    assert survivors == []
    for pid in pids:
        assert not is_alive(pid), pid


def test_timeout_ends_the_whole_shell_tree(tmp_path):
    r = run(tmp_path, "sleep 300 & echo $!; sleep 300", shell=True, timeout=1, kill_grace=2)
    o = r.outcome
    assert o.status == "timeout"
    assert o.error == "timed out after 1 s"
    pids = _bg_pids(r)
    assert len(pids) == 1
    _assert_tree_gone(r, pids + [o.pid])


def test_timeout_of_sh_c_sleep_and_sleep(tmp_path):
    """The issue's exact case: `sh -c 'sleep 300 & sleep 300'` leaves zero survivors."""
    r = run(tmp_path, "sh -c 'sleep 300 & sleep 300'", timeout=1, kill_grace=2)
    assert r.outcome.status == "timeout"
    _assert_tree_gone(r, [r.outcome.pid])


def test_children_that_ignore_sigterm_are_killed_after_the_grace(tmp_path):
    r = run(tmp_path, "trap '' TERM; sleep 300 & echo $!; sleep 300", shell=True, timeout=1, kill_grace=1)
    assert r.outcome.status == "timeout"
    pids = _bg_pids(r)
    assert len(pids) == 1
    _assert_tree_gone(r, pids + [r.outcome.pid])


def test_python_child_ignoring_sigterm(tmp_path):
    code = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(300)"
    r = run(tmp_path, py_cmd(code), timeout=1, kill_grace=1)
    assert r.outcome.status == "timeout"
    assert r.outcome.exit_code == -signal.SIGKILL
    _assert_tree_gone(r, [r.outcome.pid])


def test_a_child_that_called_setsid_is_ended_too(tmp_path):
    r = run(tmp_path, "setsid sleep 300 & echo $!; sleep 300", shell=True, timeout=1, kill_grace=1)
    pids = _bg_pids(r)
    assert len(pids) == 1
    assert r.outcome.status == "timeout"
    _assert_tree_gone(r, pids)


def test_a_double_forked_setsid_daemon_is_ended_too(tmp_path):
    """An orphan in its own session is neither in the run's group nor a descendant any more."""
    code = "import os,time\nif os.fork(): os._exit(0)\nos.setsid()\nif os.fork(): os._exit(0)\nprint(os.getpid(), flush=True)\ntime.sleep(300)"
    r = run(tmp_path, f"{py_cmd(code)}; sleep 300", shell=True, timeout=1, kill_grace=1)
    pids = _bg_pids(r)
    assert len(pids) == 1
    assert r.outcome.status == "timeout"
    _assert_tree_gone(r, pids)


def test_kill_from_another_thread(tmp_path):
    r = Run(tmp_path, "echo started; sleep 300 & sleep 300", shell=True)
    thread = threading.Thread(target=r.execute)
    thread.start()
    try:
        assert r.first_line.wait(20)
        r.run.kill()
    finally:
        thread.join(30)
    assert not thread.is_alive()
    assert (r.outcome.status, r.outcome.error) == ("error", "killed on request")
    _assert_tree_gone(r, [r.outcome.pid])


def test_a_run_whose_program_exits_while_a_background_child_holds_its_pipes_still_ends(tmp_path):
    """The run follows its program: a forgotten background child must not make it hang."""
    r = run(tmp_path, "echo main; sleep 300 & echo $!", shell=True, timeout=120)
    try:
        assert r.outcome.status == "success"
        assert r.lines["stdout"][0] == "main"
    finally:
        kill_processes(run_survivors(r.run_id))


# -- awkward output -----------------------------------------------------------------------------------

def test_20_mb_on_both_pipes_without_deadlock(tmp_path):
    code = ("import sys\nline = 'x' * 99 + '\\n'\nerr = 'e' * 99 + '\\n'\n"
            "for i in range(200000):\n    sys.stdout.write(line)\n    if i % 4 == 0: sys.stderr.write(err)\n"
            "sys.stdout.write('THE END\\n')")
    r = run(tmp_path, py_cmd(code), timeout=120, keep_lines=False)
    o = r.outcome
    assert o.status == "success", o.error
    stdout_bytes = 200000 * 100 + len("THE END\n")
    stderr_bytes = 50000 * 100
    assert r.output_file.stat().st_size == stdout_bytes + stderr_bytes  # the full output is in the run's file
    assert len(o.output.encode()) <= 65536                                   # the record keeps a bounded tail
    assert o.output.endswith("x\nTHE END\n")


def test_non_utf8_bytes_are_decoded_with_replacement(tmp_path, engines):
    code = "import sys; sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\xfe bad \\xe9t\\xe9\\n'); sys.stderr.buffer.write(b'\\x80oops\\n'); sys.exit(1)"
    r = run(tmp_path, py_cmd(code))
    assert r.outcome.output == "café \ufffd\ufffd bad \ufffdt\ufffd\n"
    assert r.lines["stdout"] == ["café \ufffd\ufffd bad \ufffdt\ufffd"]
    assert r.lines["stderr"] == ["\ufffdoops"]
    assert "\ufffdoops" in r.outcome.error
    # the history line written by the engine is valid UTF-8 JSON with the same text
    cfg = write_config(tmp_path / "eng", [job("bytes", py_cmd(code))])
    engine = engines(cfg, base_dir=tmp_path / "eng")
    record = engine.execute(engine.config.job("bytes"))
    assert record["output"] == "café \ufffd\ufffd bad \ufffdt\ufffd\n"
    raw = next((tmp_path / "eng" / "logs" / "batch").glob("batch_*.jsonl")).read_bytes()
    raw.decode("utf-8")  # strict
    assert json.loads(raw)["output"] == record["output"]


def test_a_very_long_line_without_newline_stays_bounded(tmp_path):
    size = 10 * 1024 * 1024
    code = f"import sys; sys.stdout.write('y' * {size}); sys.stdout.flush()"
    r = run(tmp_path, py_cmd(code), timeout=120, tail_bytes=4096, keep_lines=False)
    assert r.outcome.status == "success"
    assert r.longest <= MAX_LINE            # handed on in pieces of at most 64 KiB
    assert r.chunks >= size // MAX_LINE
    assert len(r.outcome.output) <= 4096    # the record's tail respects output_tail_bytes
    assert set(r.outcome.output) == {"y"}
    assert r.output_file.stat().st_size == size


def test_a_character_cut_by_the_tail_or_a_long_line_is_not_garbled(tmp_path):
    # 'a' then 2-byte characters: the 64 KiB cut of the newline-less line and the 101-byte
    # tail both fall inside a character
    code = "import sys; sys.stdout.write('a' + 'é' * 40000); sys.stdout.flush()"
    r = run(tmp_path, py_cmd(code), tail_bytes=101)
    assert r.outcome.status == "success"
    assert "\ufffd" not in "".join(r.lines["stdout"])
    assert "".join(r.lines["stdout"]) == "a" + "é" * 40000
    assert r.outcome.output == "é" * 50  # the whole characters of the last 101 bytes
    assert len(r.outcome.output.encode()) <= 101


def test_tail_keeps_the_end_of_the_output(tmp_path):
    code = "for i in range(5000): print(f'line {i}')"
    r = run(tmp_path, py_cmd(code), tail_bytes=100)
    assert len(r.outcome.output.encode()) <= 100
    assert r.outcome.output.endswith("line 4998\nline 4999\n")
    assert len(r.lines["stdout"]) == 5000


def test_output_lines_arrive_while_the_job_runs(tmp_path):
    release = tmp_path / "go"
    r = Run(tmp_path, f"echo first; {wait_file_cmd(release, 'second')}", shell=True)
    thread = threading.Thread(target=r.execute)
    thread.start()
    try:
        assert r.first_line.wait(20)
        assert r.lines["stdout"] == ["first"]
    finally:
        release.touch()
        thread.join(30)
    assert r.lines["stdout"] == ["first", "second"]


# -- resources -------------------------------------------------------------------------------------

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_successful_runs_leak_no_file_descriptors(tmp_path):
    run(tmp_path, "true")
    before = _open_fds()
    for _ in range(10):
        run(tmp_path, "true")
    assert _open_fds() == before


def test_runs_that_fail_to_start_leak_no_file_descriptors(tmp_path):
    run(tmp_path, "no-such-program-for-insect-tests")
    before = _open_fds()
    for _ in range(10):
        run(tmp_path, "no-such-program-for-insect-tests")
    assert _open_fds() == before


def test_kill_after_the_run_ended_touches_no_other_file(tmp_path):
    r = run(tmp_path, "true")
    files = [open(tmp_path / f"victim{i}", "wb+", buffering=0) for i in range(16)]
    try:
        r.run.kill()
        written = {f.name: (f.seek(0), f.read())[1] for f in files}
    finally:
        for f in files:
            f.close()
    assert all(data == b"" for data in written.values()), written


# -- through the engine: the record ------------------------------------------------------------------

def test_engine_execute_records_exit_codes_and_statuses(tmp_path, engines):
    cfg = write_config(
        tmp_path,
        [
            job("ok", "echo fine"),
            job("three", "sh -c 'exit 3'"),
            job("slow", "sleep 300", timeout=1),
            job("missing", "no-such-program-for-insect-tests"),
        ],
        settings={"kill_grace": 1},
    )
    engine = engines(cfg, base_dir=tmp_path)
    got = {name: engine.execute(engine.config.job(name)) for name in ("ok", "three", "slow", "missing")}
    assert {n: r["status"] for n, r in got.items()} == {"ok": "success", "three": "error", "slow": "timeout", "missing": "error"}
    assert got["ok"]["exit_code"] == 0 and got["three"]["exit_code"] == 3 and got["missing"]["exit_code"] is None
    assert got["slow"]["error"] == "timed out after 1 s"
    for record in got.values():
        check_batch_result(record)
        assert record["trigger"] == "manual"
    assert [r["job_name"] for r in history_records(tmp_path / "logs" / "batch")] == ["ok", "three", "slow", "missing"]
    assert Path(got["ok"]["output_file"]).read_text() == "fine\n"
    state = engine.status()
    assert {s.name: s.last_status for s in state} == {"ok": "success", "three": "error", "slow": "timeout", "missing": "error"}


def test_engine_kill_ends_a_running_job(tmp_path, engines):
    cfg = write_config(tmp_path, [job("long", "sh -c 'sleep 300 & sleep 300'")], settings={"kill_grace": 1})
    engine = engines(cfg, base_dir=tmp_path)
    engine.start()
    active = engine.run_now("long")
    wait_for(lambda: getattr(engine.active_runs().get("long"), "pid", None), what="the run to start")
    assert engine.kill("long") is True
    wait_for(lambda: "long" not in engine.active_runs(), what="the run to end")
    record = history_records(tmp_path / "logs" / "batch")[-1]
    assert (record["status"], record["error"]) == ("error", "killed on request")
    assert run_survivors(active.run_id) == []
    assert engine.kill("long") is False
