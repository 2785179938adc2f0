"""The daemon's control socket: clients attach, run and kill through it; slow and foreign clients lose."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import pytest

from helpers import CONFIG_REL, cli, fast_settings, history_records, job, py_cmd, wait_for, write_config

from insect_console.config import ConfigStore
from insect_console.control import ControlClient, peer_allowed, socket_path
from insect_console.events import DaemonLost, OutputLines, RunFinished, RunStarted
from insect_console.remote import RemoteEngine

CHATTY = py_cmd("import sys\nfor i in range(200000): sys.stdout.write('x' * 200 + '\\n')")
STEPS = py_cmd("import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(0.2)")


def _socket(base):
    return socket_path(ConfigStore(CONFIG_REL, base).runtime_dir)


def test_socket_is_private_and_removed_on_stop(tmp_path, daemons):
    write_config(tmp_path, [job("steps", STEPS, "daily", "23:59")], settings=fast_settings())
    daemon = daemons(tmp_path)
    daemon.started()
    path = _socket(tmp_path)
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert daemon.stop() == 0
    assert not path.exists()


def test_run_job_goes_through_the_daemon_and_streams_output(tmp_path, daemons):
    write_config(tmp_path, [job("steps", STEPS, "daily", "23:59")], settings=fast_settings())
    daemon = daemons(tmp_path)
    daemon.started()
    done = cli(tmp_path, "run-job", "steps")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["step 0", "step 1", "step 2"]
    assert "run by the daemon" in done.stderr
    daemon.wait_log("steps: success")  # the daemon ran it, not the CLI
    assert [r["status"] for r in history_records(tmp_path / "logs" / "batch")] == ["success"]


def test_run_job_local_runs_in_process(tmp_path, daemons):
    write_config(tmp_path, [job("steps", STEPS, "daily", "23:59")], settings=fast_settings())
    daemon = daemons(tmp_path)
    daemon.started()
    done = cli(tmp_path, "run-job", "--local", "steps")
    assert done.returncode == 0, done.stderr
    assert "run by the daemon" not in done.stderr
    assert "steps: started" not in daemon.log


def test_protocol_status_run_kill_and_errors(tmp_path, daemons):
    long = py_cmd("import time\nprint('up', flush=True)\ntime.sleep(60)")
    write_config(tmp_path, [job("long", long, "daily", "23:59")], settings=fast_settings())
    daemon = daemons(tmp_path)
    daemon.started()
    seen = []
    client = ControlClient(_socket(tmp_path), on_event=seen.append)
    try:
        status = client.call("status")
        assert status["pid"] == daemon.pid
        assert [j["name"] for j in status["jobs"]] == ["long"]
        client.call("subscribe")
        run_id = client.call("run", job="long")["run_id"]
        wait_for(lambda: any(isinstance(e, OutputLines) and e.run_id == run_id for e in seen), what="output")
        with pytest.raises(Exception, match="already running"):
            client.call("run", job="long")
        with pytest.raises(Exception, match="no job named"):
            client.call("run", job="nope")
        with pytest.raises(Exception, match="unknown command"):
            client.call("fly")
        assert client.call("kill", job="long") == {"killed": True}
        finished = wait_for(lambda: [e for e in seen if isinstance(e, RunFinished)], what="the run to finish")
        assert finished[0].record["status"] == "error"
        assert finished[0].record["error"] == "killed on request"
    finally:
        client.close()
    # a malformed line gets an error reply, and the daemon goes on
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(_socket(tmp_path)))
        raw.sendall(b"this is not json\n")
        reply = json.loads(raw.makefile().readline())
        assert reply["ok"] is False and "bad request" in reply["error"]
    assert daemon.proc.poll() is None


def test_a_client_that_never_reads_is_dropped_without_delaying_a_job(tmp_path, daemons):
    marks = tmp_path / "ticks"
    tick = py_cmd("import time,sys\nopen(sys.argv[1],'a').write('%.3f\\n' % time.time())", str(marks))
    write_config(
        tmp_path,
        [
            job("chatty", CHATTY, "daily", "23:59"),
            job("tick", tick, "interval", "1"),
        ],
        settings=fast_settings(),
    )
    daemon = daemons(tmp_path)
    daemon.started()
    stuck = socket.socket(socket.AF_UNIX)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(_socket(tmp_path)))
    stuck.sendall(b'{"id": 1, "cmd": "subscribe"}\n')  # ... and never reads again
    try:
        runner = ControlClient(_socket(tmp_path))
        try:
            runner.call("run", job="chatty")
        finally:
            runner.close()
        daemon.wait_log("dropped a client that stopped reading", timeout=60)
        daemon.wait_log("chatty: success", timeout=60)
        # the 1-second job kept running on its grid the whole time
        wait_for(lambda: marks.exists() and len(marks.read_text().split()) >= 4, timeout=20, what="4 ticks")
        stamps = [float(x) for x in marks.read_text().split()]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert max(gaps) < 2.5, gaps  # no run was skipped: at most one period between starts
    finally:
        stuck.close()


def test_a_client_with_another_uid_is_refused(tmp_path, daemons):
    if os.geteuid() != 0:
        assert not peer_allowed(os.geteuid() + 1)
        pytest.skip("dropping privileges needs root; the check itself is tested above")
    # pytest's tmp_path is inside a 0700 directory; the other user must be able to reach the
    # socket at all, so that the uid check is what refuses it
    base = Path(tempfile.mkdtemp(prefix="insect-uid-"))
    request_cleanup = lambda: shutil.rmtree(base, ignore_errors=True)  # noqa: E731
    try:
        _refused_for_nobody(base, daemons)
    finally:
        request_cleanup()


def _refused_for_nobody(base: Path, daemons) -> None:
    write_config(base, [job("steps", STEPS, "daily", "23:59")], settings=fast_settings())
    daemon = daemons(base)
    daemon.started()
    path = _socket(base)
    for directory in (base, path.parent.parent, path.parent):
        os.chmod(directory, 0o711)
    os.chmod(path, 0o666)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, connect, report what the daemon said
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            s.settimeout(5)  # the daemon answers the refusal at once and closes
            os.write(write_end, s.recv(4096) or b"<closed>")
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            os.write(write_end, f"<{e!r}>".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read().decode()
    assert "permission denied" in answer
    assert daemon.proc.poll() is None


def test_remote_engine_sees_runs_and_notices_the_daemon_going_away(tmp_path, daemons):
    write_config(tmp_path, [job("steps", STEPS, "daily", "23:59")], settings=fast_settings())
    daemon = daemons(tmp_path)
    daemon.started()
    remote = RemoteEngine(ConfigStore(CONFIG_REL, tmp_path))
    seen = []
    remote.subscribe(seen.append)
    remote.start()
    try:
        assert remote.daemon_pid == daemon.pid
        assert remote.status()[0].next_run is not None
        remote.run_now("steps")
        wait_for(lambda: any(isinstance(e, RunFinished) for e in seen), what="the run to finish")
        started = [e for e in seen if isinstance(e, RunStarted)]
        lines = [line for e in seen if isinstance(e, OutputLines) for line in e.lines]
        assert len(started) == 1 and lines == ["step 0", "step 1", "step 2"]
        # a config change through the remote engine reaches the daemon
        remote.set_enabled("steps", False)
        wait_for(lambda: remote.status()[0].next_run is None, what="the daemon to reload")
        daemon.stop()
        wait_for(lambda: any(isinstance(e, DaemonLost) for e in seen), what="DaemonLost")
        assert not remote.running
    finally:
        remote.stop()


def test_a_console_leaving_is_just_a_closed_connection(tmp_path, daemons):
    marks = tmp_path / "ticks"
    tick = py_cmd("import time,sys\nopen(sys.argv[1],'a').write('%.3f\\n' % time.time())", str(marks))
    write_config(tmp_path, [job("tick", tick, "interval", "1")], settings=fast_settings())
    daemon = daemons(tmp_path)
    daemon.started()
    wait_for(marks.exists, what="the first tick")
    for _ in range(3):
        remote = RemoteEngine(ConfigStore(CONFIG_REL, tmp_path))
        remote.start()
        remote._client.on_close = None
        remote._client.sock.shutdown(socket.SHUT_RDWR)  # as an SSH drop would: no goodbye
        remote._client.sock.close()
        time.sleep(0.2)
    count = len(marks.read_text().split())
    wait_for(lambda: len(marks.read_text().split()) >= count + 2, timeout=10, what="more ticks")
    assert daemon.proc.poll() is None
    assert "Traceback" not in daemon.log
