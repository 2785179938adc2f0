"""The Prometheus textfile: written by the real daemon after every run, each value checked
against the history; the counts survive a restart; a real node_exporter serves them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from debian import require_binary
from helpers import cli, end_process, fast_settings, history_records, job, py_cmd, read_state, wait_for, write_config

STATUSES = ("success", "error", "timeout", "interrupted", "skipped")
PER_JOB = ("last_run_timestamp_seconds", "last_success_timestamp_seconds", "last_duration_seconds", "consecutive_failures",
           "running", "next_run_timestamp_seconds", "enabled")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name, **labels):
    return found.get((f"insect_console_{name}", tuple(sorted(labels.items()))))


def read_metrics(path):
    try:
        return samples(path.read_text())
    except OSError:
        return {}


def ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def check_against_history(found, tmp_path, cfg, jobs, enabled, *, up):
    history = history_records(tmp_path / "logs" / "batch")
    state = read_state(cfg)
    for job in jobs:
        mine = [r for r in history if r["job_name"] == job]
        for status in STATUSES:
            assert value(found, "runs_total", job=job, status=status) == sum(r["status"] == status for r in mine), (job, status)
        ran = [r for r in mine if r["status"] != "skipped"]
        if ran:
            assert value(found, "last_run_timestamp_seconds", job=job) == pytest.approx(ts(ran[-1]["start_time"]), abs=1e-3)
            assert value(found, "last_duration_seconds", job=job) == pytest.approx(ran[-1]["duration_s"])
        else:
            assert value(found, "last_run_timestamp_seconds", job=job) is None
        successes = [r for r in ran if r["status"] == "success"]
        if successes:
            assert value(found, "last_success_timestamp_seconds", job=job) == pytest.approx(ts(successes[-1]["start_time"]), abs=1e-3)
        else:
            assert value(found, "last_success_timestamp_seconds", job=job) is None
        streak = 0
        for r in reversed(ran):
            if r["status"] not in ("error", "timeout"):
                break
            streak += 1
        assert value(found, "consecutive_failures", job=job) == streak, job
        assert value(found, "running", job=job) == 0
        assert value(found, "enabled", job=job) == (1 if job in enabled else 0)
        next_run = value(found, "next_run_timestamp_seconds", job=job)
        if up and job in enabled:
            assert next_run == pytest.approx(dt.datetime.fromisoformat(state["next_runs"][job]).timestamp())
        elif job not in enabled:
            assert next_run is None
    assert value(found, "up") == (1 if up else 0)


def test_the_daemon_writes_metrics_that_match_the_history_and_survive_a_restart(tmp_path, daemons):
    metrics = tmp_path / "textfile" / "insect_console.prom"
    metrics.parent.mkdir()
    bad = py_cmd("import sys; sys.exit(2)")
    cfg = write_config(
        tmp_path,
        [job("ok", py_cmd("print('fine')"), "daily", "02:00"),
        job("bad", bad, "daily", "02:00"),
        job("slow", py_cmd("import time; time.sleep(60)"), "daily", "02:00", timeout=1),
        job("off", "true", "daily", "02:00", enabled=False),
        job("idle", "true", "weekly", "sun 03:00")],
        settings=fast_settings(metrics_file=str(metrics)),
    )
    jobs, enabled = ("ok", "bad", "slow", "off", "idle"), {"ok", "bad", "slow", "idle"}
    started = time.time()
    d = daemons(tmp_path)
    d.started()
    found = wait_for(lambda: read_metrics(metrics), what="the metrics file")
    assert value(found, "up") == 1 and started - 1 <= value(found, "scheduler_start_time_seconds") <= time.time()
    for name, code in (("ok", 0), ("bad", 1), ("bad", 1), ("slow", 124), ("ok", 0), ("off", 0)):
        assert cli(tmp_path, "run-job", name).returncode == code
    expected = {("ok", "success"): 2, ("bad", "error"): 2, ("slow", "timeout"): 1, ("off", "success"): 1}
    # written after every run: the file catches up with the last one
    found = wait_for(lambda: (f := read_metrics(metrics)) and all(value(f, "runs_total", job=j, status=s) == n for (j, s), n in expected.items()) and f,
                     what="the metrics of the six runs")
    check_against_history(found, tmp_path, cfg, jobs, enabled, up=True)
    assert value(found, "consecutive_failures", job="bad") == 2
    for job_name in jobs:
        for name in PER_JOB[3:5] + PER_JOB[6:]:
            assert value(found, name, job=job_name) is not None, (name, job_name)

    first_start = value(found, "scheduler_start_time_seconds")
    assert d.stop() == 0
    found = read_metrics(metrics)
    check_against_history(found, tmp_path, cfg, jobs, enabled, up=False)   # the last write says it stopped

    # a restart: the counts come back from the state file, not from zero
    d = daemons(tmp_path)
    d.started()
    found = wait_for(lambda: (f := read_metrics(metrics)) and value(f, "up") == 1 and f, what="metrics of the restarted daemon")
    assert value(found, "scheduler_start_time_seconds") > first_start
    check_against_history(found, tmp_path, cfg, jobs, enabled, up=True)
    assert cli(tmp_path, "run-job", "ok").returncode == 0
    found = wait_for(lambda: (f := read_metrics(metrics)) and value(f, "runs_total", job="ok", status="success") == 3 and f, what="the third ok run")
    check_against_history(found, tmp_path, cfg, jobs, enabled, up=True)
    assert d.stop() == 0
    assert [p.name for p in metrics.parent.iterdir()] == ["insect_console.prom"]   # no temp file left beside it
    assert metrics.stat().st_mode & 0o044 == 0o044                                  # node_exporter (another user) can read it


def test_an_unwritable_metrics_file_is_logged_once_and_runs_go_on(tmp_path, daemons):
    write_config(tmp_path, [job("tick", "true", "interval", "1")],
                 settings=fast_settings(metrics_file=str(tmp_path / "no-such-dir" / "m.prom")))
    d = daemons(tmp_path)
    d.started()
    wait_for(lambda: sum(r["status"] == "success" for r in history_records(tmp_path / "logs" / "batch")) >= 3, what="three runs")
    assert d.stop() == 0
    assert d.log.count("can't write the metrics file") == 1, d.log


def test_metrics_file_must_be_a_prom_file(tmp_path):
    from forkserver import cli_forked
    from helpers import assert_one_line_error

    write_config(tmp_path, [job("a", "true")], settings={"metrics_file": "/var/lib/prometheus/node-exporter/insect_console.txt"})
    assert_one_line_error(cli_forked(tmp_path, "list"), "settings.metrics_file", ".prom")


# -- a real node_exporter ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def start_node_exporter(binary: str, textfile_dir, log_path):
    """node_exporter with only the textfile collector, on a free loopback port; (process, port)."""
    for _ in range(3):
        port = free_port()
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [binary, f"--collector.textfile.directory={textfile_dir}", f"--web.listen-address=127.0.0.1:{port}",
             "--collector.disable-defaults", "--collector.textfile"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        try:
            wait_for(lambda: proc.poll() is not None or scrape(port) is not None, timeout=30, what="node_exporter to answer")
        except AssertionError:
            end_process(proc)
            raise
        if proc.poll() is None:
            return proc, port
        proc.wait()  # the port was taken meanwhile: another one
    raise AssertionError(f"node_exporter did not start: {open(log_path).read()}")


def test_node_exporter_serves_our_metrics(tmp_path, daemons):
    binary = require_binary("prometheus-node-exporter", "prometheus-node-exporter")
    textfile_dir = tmp_path / "node-exporter"
    textfile_dir.mkdir()
    write_config(tmp_path, [job("detect", py_cmd("print('a moth')"), "daily", "02:00")],
                 settings=fast_settings(metrics_file=str(textfile_dir / "insect_console.prom")))
    exporter, port = start_node_exporter(binary, textfile_dir, tmp_path / "node_exporter.log")
    try:
        d = daemons(tmp_path)
        d.started()
        assert cli(tmp_path, "run-job", "detect").returncode == 0

        def served():
            text = scrape(port)
            if not text:
                return None
            found = samples(text)
            return found if value(found, "runs_total", job="detect", status="success") == 1 else None

        found = wait_for(served, what="node_exporter to serve the run's count")
        assert value(found, "up") == 1 and value(found, "enabled", job="detect") == 1
        assert value(found, "last_success_timestamp_seconds", job="detect") is not None
        assert found[("node_textfile_scrape_error", ())] == 0
        mtime = found[("node_textfile_mtime_seconds", (("file", str(textfile_dir / "insect_console.prom")),))]
        assert mtime == pytest.approx(os.stat(textfile_dir / "insect_console.prom").st_mtime, abs=1)
        assert d.stop() == 0
    finally:
        assert end_process(exporter, signal.SIGTERM) in (0, -signal.SIGTERM, 143)
