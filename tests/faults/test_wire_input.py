"""Bad input over the wire: garbage, a 100 MB line, an unknown protocol version, an old station.

Each gets one clear line, and the daemon goes on scheduling its 1-second job on its grid the
whole time. Over the Unix socket, and through `control-stdio` behind a real sshd (the way a
console elsewhere reaches the station), so the bridge is shown to pass a refusal on and end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from insect_console.config import ConfigStore
from insect_console.control import ControlClient, socket_path
from insect_console.errors import DaemonGone
from insect_console.commands import MAX_CURSORS
from insect_console.protocol import ProtocolMismatch, greet
from insect_console.sshengine import SshEngine
from insect_console.transport import SshTarget
from helpers import py_cmd
from sshd import REMOTE_COMMAND, running_sshd

from .kit import PY, Daemon, fast, job, wait_for, write_config

HUNDRED_MB = 100 * 1024 * 1024
TICK = "import time,sys\nopen(sys.argv[1],'a').write('%.3f\\n' % time.time())"
ROOT = Path(__file__).resolve().parents[2]
OLD_COMMIT = "951ca05"
"""The last commit before control protocol 2: a real old station."""


@pytest.fixture
def ticking(tmp_path: Path):
    """A daemon whose job `tick` runs every second and stamps tmp_path/ticks; yields (daemon, socket, ticks)."""
    ticks = tmp_path / "ticks"
    config = write_config(tmp_path, [job("tick", py_cmd(TICK, str(ticks)), "interval", "1")], fast(log_dir="logs"), rel="config.toml")
    daemon = Daemon(tmp_path, config=str(config))
    try:
        daemon.started()
        wait_for(ticks.exists, timeout=30, what="the first tick")
        yield daemon, socket_path(ConfigStore(config, tmp_path).runtime_dir), ticks, config
    finally:
        daemon.stop()


def assert_on_grid(ticks: Path, since: float) -> None:
    """The 1-second job kept running on its grid: a few more runs since `since`, none missed
    (a missed period would leave two seconds between starts)."""
    wait_for(lambda: sum(float(t) > since for t in ticks.read_text().split()) >= 3, timeout=30, what="3 more ticks")
    stamps = [float(t) for t in ticks.read_text().split()]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < 2.5, gaps


def _lines(sock: socket.socket, n: int) -> list[dict]:
    reader = sock.makefile("rb")
    return [json.loads(reader.readline()) for _ in range(n)]


GARBAGE = [
    b"this is not json",
    b"[1, 2, 3]",
    b'"a string"',
    b"\xff\xfe\x00{not utf-8}",
    b"[" * 60_000,  # nested too deep for a parser, though under the 64 KiB a request may have
    b'{"cmd": 5}',
    b'{"id": [1], "cmd": "fly"}',
    b'{"id": 2, "cmd": "run"}',
    b'{"id": 3, "cmd": "run", "job": {"name": "x"}}',
    b'{"id": 4, "cmd": "history_page", "cursor": "x"}',
    b'{"id": 5, "cmd": "output_tail", "path": "/etc/shadow"}',
    b'{"id": 6, "cmd": "add_job", "job": "everything"}',
    b'{"id": 7, "cmd": "preview", "job": {"name": "p", "command": "true", "schedule_type": "hourly", "schedule_time": "1"}}',
]


def test_garbage_gets_a_one_line_error_each_and_the_connection_goes_on(ticking):
    daemon, path, ticks, _config = ticking
    since = time.time()
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(path))
        raw.sendall(b"\n".join(GARBAGE) + b'\n{"id": 99, "cmd": "status"}\n')
        replies = _lines(raw, len(GARBAGE) + 1)
    *refused, status = sorted(replies, key=lambda r: r.get("id") == 99)
    assert len(refused) == len(GARBAGE)
    for reply in refused:
        assert reply["ok"] is False and reply["error"] and "\n" not in reply["error"] and "Traceback" not in reply["error"], reply
    assert status["ok"] is True and status["result"]["pid"] == daemon.pid
    errors = " | ".join(r["error"] for r in refused)
    for needle in ("not JSON", "a request is a JSON object", "unknown command", "'job' must be a non-empty string",
                   "no history cursor", "not a run output file", "schedule_type"):
        assert needle in errors, (needle, errors)
    assert_on_grid(ticks, since)
    assert "Traceback" not in daemon.log and daemon.proc.poll() is None


def test_a_100_mb_line_is_refused_unread_and_the_daemon_schedules_on(ticking):
    daemon, path, ticks, _config = ticking
    rss = psutil.Process(daemon.pid).memory_info().rss
    since = time.time()
    sent = [0]
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(path))

        def flood() -> None:
            block = b"x" * (1 << 20)
            try:
                while sent[0] < HUNDRED_MB:
                    raw.sendall(block)
                    sent[0] += len(block)
            except OSError:
                pass  # dropped, as it should be

        sender = threading.Thread(target=flood)
        sender.start()
        raw.settimeout(30)
        answer = raw.makefile("rb").readline()
        sender.join(30)
    reply = json.loads(answer)
    assert reply["ok"] is False and reply["error"].startswith("request too long: a request is one line of at most 64 KiB")
    assert sent[0] < HUNDRED_MB  # the daemon stopped reading long before the end
    assert psutil.Process(daemon.pid).memory_info().rss - rss < 20 * 1024 * 1024
    daemon.wait_log("dropped a client whose request was longer than 64 KiB")
    assert_on_grid(ticks, since)
    client = ControlClient(path)  # the next client is served as ever; one that asks too much is told why it was dropped
    try:
        assert client.call("status")["pid"] == daemon.pid
        with pytest.raises(DaemonGone):
            client.call("history_open", query={"job": "x" * (100 * 1024)})
        wait_for(client.closed.is_set, what="the connection to end")
        assert client.why_closed().startswith("request too long")
    finally:
        client.close()


def test_an_unknown_protocol_version_is_a_clear_refusal(ticking):
    daemon, path, _ticks, _config = ticking
    client = ControlClient(path)
    try:
        with pytest.raises(ProtocolMismatch, match="unknown protocol version 0; this daemon speaks 1 to 2"):
            client.call("hello", version=0)
        for _ in range(MAX_CURSORS * 3):  # cursors stay bounded however many are opened
            client.call("history_open", query={})
        assert greet(client)["version"] == 2
    finally:
        client.close()


@pytest.fixture
def sshd(tmp_path: Path):
    with running_sshd(tmp_path / "ssh") as server:
        yield server


def test_through_ssh_garbage_and_a_100_mb_line_end_in_one_line_and_the_bridge_ends(ticking, sshd):
    daemon, _path, ticks, config = ticking
    since = time.time()
    remote = f"{REMOTE_COMMAND} -c {config} control-stdio"
    # stdin ends right after the requests: every one is still answered (a slow one too), then the bridge ends
    asked = b'garbage\n{"id": 1, "cmd": "status"}\n{"id": 2, "cmd": "history_open", "query": {}}\n'
    done = subprocess.run([*sshd.ssh, "station-a", remote], input=asked, capture_output=True, timeout=60)
    garbage, status, opened = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda r: r["id"] or 0)
    assert done.returncode == 0 and garbage["ok"] is False and "not JSON" in garbage["error"] and status["result"]["pid"] == daemon.pid
    assert opened["ok"] is True and opened["result"]["cursor"] == 1
    flood = subprocess.Popen([*sshd.ssh, "station-a", remote], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent = 0
    try:
        block = b"y" * (1 << 20)
        while sent < HUNDRED_MB:
            flood.stdin.write(block)
            sent += len(block)
    except OSError:
        pass  # the bridge ended: ssh's stdin is closed
    finally:
        try:
            flood.stdin.close()
        except OSError:
            pass
    out = flood.stdout.read()
    flood.wait(60)
    flood.stderr.close()
    flood.stdout.close()
    reply = json.loads(out.splitlines()[0])
    assert reply["ok"] is False and reply["error"].startswith("request too long")
    assert_on_grid(ticks, since)
    assert daemon.proc.poll() is None and "Traceback" not in daemon.log
    wait_for(lambda: not [p for p in sshd.sessions() if "control-stdio" in " ".join(p.cmdline())], timeout=30, what="the bridges to end")


@pytest.fixture
def old_station(tmp_path: Path):
    """The insect-console of the last commit before protocol 2, unpacked from git, running its daemon."""
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT, "insect_console"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {OLD_COMMIT} is not in this clone: {archive.stderr.decode().strip()}")
    (tmp_path / "old.tar").write_bytes(archive.stdout)
    with tarfile.open(tmp_path / "old.tar") as tar:
        tar.extractall(old, filter="data")
    config = write_config(tmp_path, [job("a", "true", "daily", "02:00")], fast(log_dir="logs"), rel="config.toml")
    daemon = Daemon(tmp_path, config=str(config), env={"PYTHONPATH": str(old)})
    try:
        daemon.started()
        yield daemon, old, config
    finally:
        daemon.stop()


def test_an_old_station_gives_a_clear_message_not_a_traceback(old_station, sshd, tmp_path):
    daemon, old, config = old_station
    assert "control protocol 2" not in (old / "insect_console" / "control.py").read_text()
    client = ControlClient(socket_path(ConfigStore(config, tmp_path).runtime_dir))
    try:  # its socket: it has no hello
        with pytest.raises(ProtocolMismatch, match="too old for a remote console .its control protocol has no version"):
            greet(client)
    finally:
        client.close()
    # over ssh: it has no control-stdio either
    engine = SshEngine(SshTarget("station-a", config=str(config), remote_command=f"env PYTHONPATH={old} {PY} -m insect_console"), ssh=sshd.ssh)
    with pytest.raises(ProtocolMismatch, match="station-a: the station's insect-console is too old for a remote console .it has no control-stdio command"):
        engine.start()
    with pytest.raises(DaemonGone):
        engine._call("status")
    assert daemon.proc.poll() is None
