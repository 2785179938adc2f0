"""Healthchecks pings from the real daemon (and run-job) to a local HTTP server on 127.0.0.1.

/start when a run starts, the check's URL on success, /<exit code> or /fail at the end, the
output tail as the body, the run's id as rid. With the server down, runs go on undisturbed and
the outage is logged once; URLs in logs never show their secret part.
"""

from __future__ import annotations

import tomllib

import http.server
import socket
import threading
import urllib.parse

import pytest

from forkserver import cli_forked
from helpers import (
    CONFIG_REL,
    assert_one_line_error,
    cli,
    fast_settings,
    history_records,
    job,
    py_cmd,
    wait_for,
    write_config,
)
from insect_console import pings

UUID_OK = "0f7c3a8e-1111-2222-3333-444455556666"
UUID_BAD = "9a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"
PING_KEY = "sEcReTpInGkEy0123456789"


class PingServer:
    """http.server in a thread, recording every request: (method, path, query dict, body)."""

    def __init__(self, port: int = 0) -> None:
        requests = self.requests = []
        lock = self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                with lock:
                    requests.append((self.command, url.path, dict(urllib.parse.parse_qsl(url.query)), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_POST = do_GET = do_HEAD = _record

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self) -> list[tuple[str, str, dict, bytes]]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def server():
    s = PingServer()
    yield s
    s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(tmp_path, job=None):
    return [r for r in history_records(tmp_path / "logs" / "batch") if job is None or r["job_name"] == job]


# -- redact ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"https://hc-ping.com/{UUID_OK}", "https://hc-ping.com/…"),
        (f"https://hc-ping.com/{UUID_OK}/start?rid=abc", "https://hc-ping.com/…/start?…"),
        (f"https://hc-ping.com/{UUID_OK}/3", "https://hc-ping.com/…/3"),
        (f"https://hc-ping.com/{UUID_OK}/fail", "https://hc-ping.com/…/fail"),
        (f"https://hc-ping.com/{PING_KEY}/nightly-backup", "https://hc-ping.com/…/…"),
        (f"https://hc-ping.com/{PING_KEY}/nightly-backup/start", "https://hc-ping.com/…/…/start"),
        (f"https://hc.example.org:8000/ping/{UUID_OK}/1", "https://hc.example.org:8000/ping/…/1"),
        (f"http://user:pw@[::1]:8080/{UUID_OK}", "http://[::1]:8080/…"),
        ("not a url", "…"),
    ],
)
def test_redact_hides_the_secret_part(url, shown):
    assert pings.redact(url) == shown
    for secret in (UUID_OK, PING_KEY, "pw", "rid=abc"):
        assert secret not in pings.redact(url)


def test_end_ping_suffix_and_body():
    assert pings.end_suffix({"status": "success", "exit_code": 0}) == ""
    assert pings.end_suffix({"status": "error", "exit_code": 3}) == "/3"
    assert pings.end_suffix({"status": "error", "exit_code": -9}) == "/fail"      # killed by a signal
    assert pings.end_suffix({"status": "error", "exit_code": None}) == "/fail"    # command not found
    assert pings.end_suffix({"status": "timeout", "exit_code": -15}) == "/fail"
    assert pings.end_suffix({"status": "interrupted"}) == "/fail"
    body = pings.end_body({"output": "é" * 6000, "error": None})
    assert len(body) <= pings.BODY_BYTES and body.decode("utf-8") == "é" * (len(body) // 2)   # cut between characters
    assert pings.end_body({"output": "out", "error": "exit status 3: boom"}) == b"out\nexit status 3: boom\n"
    assert pings.rid_for("20261202T120000-abcdef") == pings.rid_for("20261202T120000-abcdef") != pings.rid_for("20261202T120000-abcdee")


# -- the daemon pings -----------------------------------------------------------------------------------------


def test_daemon_pings_start_and_end_of_success_failure_and_timeout(tmp_path, daemons, server):
    big = py_cmd("import sys\nfor i in range(2000): print(f'line {i:05d}')")   # 22 kB of output: the body is its last 10 kB
    bad = py_cmd("import sys; print('half done'); print('disk full', file=sys.stderr); sys.exit(3)")
    write_config(
        tmp_path,
        [job("ok", big, "daily", "02:00", ping_url=f"{server.base}/{UUID_OK}"),
        job("bad", bad, "daily", "02:00", ping_url=f"{server.base}/{UUID_BAD}"),
        job("slow", py_cmd("import time; print('started', flush=True); time.sleep(60)"), "daily", "02:00", timeout=1, ping_slug="slow-job"),
        job("quiet", "true", "daily", "02:00")],   # no ping configured: nothing sent
        settings=fast_settings(ping_base=f"{server.base}/{PING_KEY}"),
    )
    d = daemons(tmp_path)
    d.started()
    assert cli(tmp_path, "run-job", "ok").returncode == 0
    assert cli(tmp_path, "run-job", "bad").returncode == 1
    assert cli(tmp_path, "run-job", "slow").returncode == 124
    assert cli(tmp_path, "run-job", "quiet").returncode == 0
    wait_for(lambda: len(server.seen()) >= 6, what="six pings")
    assert d.stop() == 0
    by_job = {r["job_name"]: r for r in records(tmp_path)}
    seen = server.seen()
    assert len(seen) == 6, seen
    expected = [
        (f"/{UUID_OK}", "ok", by_job["ok"]["output"][-pings.BODY_BYTES:].encode()),
        (f"/{UUID_BAD}/3", "bad", b"half done\n" + by_job["bad"]["error"].encode() + b"\n"),
        (f"/{PING_KEY}/slow-job/fail", "slow", b"started\n" + by_job["slow"]["error"].encode() + b"\n"),
    ]
    for (end_path, name, body), (start, end) in zip(expected, zip(seen[0::2], seen[1::2])):
        rid = pings.rid_for(by_job[name]["run_id"])
        assert start == ("POST", end_path.rsplit("/", 1)[0] + "/start" if name != "ok" else f"/{UUID_OK}/start", {"rid": rid}, b""), (name, start)
        assert end == ("POST", end_path, {"rid": rid}, body), (name, end)
    assert len(expected[0][2]) == pings.BODY_BYTES
    assert by_job["slow"]["status"] == "timeout" and by_job["bad"]["exit_code"] == 3
    log = d.log
    for secret in (UUID_OK, UUID_BAD, PING_KEY):
        assert secret not in log


def test_with_the_server_down_runs_go_on_and_the_outage_is_logged_once(tmp_path, daemons):
    port = free_port()   # nothing listens there: every ping is refused
    write_config(tmp_path, [job("tick", "echo tick", "interval", "1", ping_url=f"http://127.0.0.1:{port}/{UUID_OK}")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    d.wait_log("can't send pings", timeout=30)
    wait_for(lambda: len(records(tmp_path, "tick")) >= 6, timeout=30, what="six runs while pings fail")
    done = records(tmp_path, "tick")
    assert {r["status"] for r in done} == {"success"}          # none skipped: no run waited for a ping
    assert all(r["duration_s"] < pings.TIMEOUT for r in done)  # a run held by a ping would last a ping timeout
    server = PingServer(port)
    try:
        d.wait_log("pings get through again", timeout=30)
        wait_for(lambda: any(path == f"/{UUID_OK}" for _, path, _, _ in server.seen()), what="a success ping once the server is back")
        assert d.stop() == 0
    finally:
        server.close()
    log = d.log
    assert log.count("can't send pings") == 1, log
    assert log.count("pings get through again") == 1
    assert f"http://127.0.0.1:{port}/…" in log and UUID_OK not in log


def test_run_job_without_a_daemon_pings_too(tmp_path, server):
    write_config(tmp_path, [job("cronjob", "echo from cron", "daily", "02:00", ping_url=f"{server.base}/{UUID_OK}")], settings=fast_settings())
    done = cli(tmp_path, "run-job", "cronjob")
    assert done.returncode == 0, done.stderr
    [record] = records(tmp_path)
    rid = pings.rid_for(record["run_id"])
    assert server.seen() == [("POST", f"/{UUID_OK}/start", {"rid": rid}, b""), ("POST", f"/{UUID_OK}", {"rid": rid}, b"from cron\n")]


def test_a_refused_ping_is_logged_without_its_secret(tmp_path):
    """A 4xx answer (the check's URL is wrong) is reported, not retried, and not taken for an outage."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        write_config(tmp_path, [job("j", "true", "daily", "02:00", ping_url=f"http://127.0.0.1:{httpd.server_address[1]}/{UUID_OK}")],
                     settings=fast_settings())
        done = cli(tmp_path, "-l", "WARNING", "run-job", "j")
        assert done.returncode == 0
        assert done.stderr.count("Healthchecks refused the ping") == 2, done.stderr   # start and end, once each
        assert "HTTP 404" in done.stderr and UUID_OK not in done.stderr and "can't send pings" not in done.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


# -- configuring them -------------------------------------------------------------------------------------------


def test_cli_sets_and_clears_a_ping(tmp_path):
    write_config(tmp_path, [job("a", "true")], settings={"ping_base": "https://hc-ping.com/KEY"})
    assert cli_forked(tmp_path, "add", "b", "true", "--type", "daily", "--time", "01:00", "--ping-url", f"https://hc-ping.com/{UUID_OK}").returncode == 0
    assert cli_forked(tmp_path, "edit", "a", "--ping-slug", "job-a").returncode == 0
    text = (tmp_path / CONFIG_REL).read_text()
    assert f'ping_url = "https://hc-ping.com/{UUID_OK}"' in text and 'ping_slug = "job-a"' in text
    assert cli_forked(tmp_path, "edit", "b", "--ping-slug", "job-b").returncode == 0    # one replaces the other
    assert cli_forked(tmp_path, "edit", "a", "--ping-slug", "").returncode == 0          # '' removes it
    text = (tmp_path / CONFIG_REL).read_text()
    jobs = {j["name"]: j for j in tomllib.loads(text)["jobs"]}
    assert "ping_url" not in jobs["a"] and "ping_slug" not in jobs["a"] and "ping_url" not in jobs["b"]
    assert jobs["b"]["ping_slug"] == "job-b" and "job-a" not in text


@pytest.mark.parametrize(
    "args, needles",
    [
        (("--ping-url", "ftp://hc-ping.com/x"), ("ping_url", "http(s) URL")),
        (("--ping-url", f"https://hc-ping.com/{UUID_OK}?x=1"), ("ping_url", "query")),
        (("--ping-slug", "Not A Slug"), ("ping_slug",)),
        (("--ping-slug", "fine-slug"), ("ping_slug", "settings.ping_base")),   # no ping_base in this config
    ],
    ids=["not-http", "query", "bad-slug", "slug-without-base"],
)
def test_ping_mistakes_are_one_line_and_write_nothing(tmp_path, args, needles):
    cfg = write_config(tmp_path, [job("a", "true")])
    before = cfg.read_bytes()
    line = assert_one_line_error(cli_forked(tmp_path, "edit", "a", *args), *needles)
    assert UUID_OK not in line
    assert cfg.read_bytes() == before


def test_a_hand_written_slug_without_ping_base_is_a_config_error(tmp_path):
    write_config(tmp_path, [job("a", "true", ping_slug="a-check")])
    assert_one_line_error(cli_forked(tmp_path, "list"), "ping_slug", "settings.ping_base")
