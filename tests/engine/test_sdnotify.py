"""systemd's notify protocol: the real daemon talks to a datagram socket bound as NOTIFY_SOCKET.

READY=1 once it schedules, STATUS=, WATCHDOG=1 from the scheduling loop itself (so a loop that
hangs stops the pings), RELOADING=1 + MONOTONIC_USEC= / READY=1 around a reload, STOPPING=1.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid

import pytest

from helpers import cli, fast_settings, job, py_cmd, wait_for, write_config
from insect_console import sdnotify


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd; records (monotonic time, fields)."""

    def __init__(self, address: str) -> None:
        self.address = address  # as put in NOTIFY_SOCKET: a path, or @name for the abstract namespace
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, list[str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode().split("\n")))

    def seen(self) -> list[tuple[float, list[str]]]:
        with self._lock:
            return list(self.messages)

    def index_of(self, field: str, after: int = 0) -> int | None:
        for i, (_, fields) in enumerate(self.seen()):
            if i >= after and field in fields:
                return i
        return None

    def wait_for(self, field: str, after: int = 0, timeout: float = 20) -> int:
        return wait_for(lambda: (i := self.index_of(field, after)) is not None and i + 1, timeout, what=f"{field} on the notify socket") - 1

    def watchdog_times(self, after: int = 0) -> list[float]:
        return [t for i, (t, fields) in enumerate(self.seen()) if i >= after and "WATCHDOG=1" in fields]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path):
    address = str(tmp_path / "notify.sock") if request.param == "path" else f"@insect-test-{uuid.uuid4().hex}"
    ns = NotifySocket(address)
    yield ns
    ns.close()


def test_the_daemon_tells_systemd_ready_status_watchdog_reloading_and_stopping(tmp_path, daemons, notify_socket, monkeypatch):
    env_probe = py_cmd("import os; print(os.environ.get('NOTIFY_SOCKET', 'unset'), os.environ.get('WATCHDOG_USEC', 'unset'))")
    write_config(tmp_path, [job("nightly", "true", "daily", "02:00"), job("probe", env_probe, "daily", "03:00")], settings=fast_settings())
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # systemd's WatchdogSec=2
    d = daemons(tmp_path)
    ready = notify_socket.wait_for("READY=1")
    status = [f for f in notify_socket.seen()[ready][1] if f.startswith("STATUS=")]
    assert status, notify_socket.seen()[ready]
    # the loop pings the watchdog at half its interval: five pings, every gap well inside the 2 s
    wait_for(lambda: len(notify_socket.watchdog_times(ready)) >= 6, timeout=30, what="six watchdog pings after READY=1")
    times = notify_socket.watchdog_times(ready)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 2.0, gaps      # a liveness bound: systemd would restart us at 2 s

    # a run's start and end update STATUS=; the job itself does not inherit the notify socket
    before = len(notify_socket.seen())
    done = cli(tmp_path, "run-job", "probe", env={"NOTIFY_SOCKET": "", "WATCHDOG_USEC": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "unset unset\n"
    wait_for(lambda: any(f.startswith("STATUS=") for _, fields in notify_socket.seen()[before:] for f in fields), what="a STATUS= after the run")

    # a reload: RELOADING=1 with MONOTONIC_USEC=, then READY=1
    d.proc.send_signal(signal.SIGHUP)
    reloading = notify_socket.wait_for("RELOADING=1", after=before)
    fields = notify_socket.seen()[reloading][1]
    usec = [f.split("=", 1)[1] for f in fields if f.startswith("MONOTONIC_USEC=")]
    assert usec and usec[0].isdigit(), fields
    assert abs(int(usec[0]) - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60_000_000  # the same clock as ours
    notify_socket.wait_for("READY=1", after=reloading + 1)

    d.proc.send_signal(signal.SIGTERM)
    notify_socket.wait_for("STOPPING=1", after=reloading + 1)
    assert d.proc.wait(30) == 0
    assert "Traceback" not in d.log


def test_without_notify_socket_the_daemon_sends_nothing_and_runs(tmp_path, daemons, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")   # a watchdog without a socket: ignored
    write_config(tmp_path, [job("a", "true", "daily", "02:00")], settings=fast_settings())
    d = daemons(tmp_path)
    d.started()
    assert "systemd watchdog" not in d.log
    assert d.stop() == 0


def test_a_watchdog_meant_for_another_pid_is_not_ours(tmp_path):
    ours = sdnotify.Notifier({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "5000000", "WATCHDOG_PID": str(os.getpid())})
    theirs = sdnotify.Notifier({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"})
    assert (ours.watchdog_interval, theirs.watchdog_interval) == (5.0, None)
    env = {"NOTIFY_SOCKET": "@abc", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid()), "OTHER": "kept"}
    notifier = sdnotify.from_environment(env)
    assert notifier.address == "\0abc" and notifier.watchdog_interval == 1.0
    assert env == {"OTHER": "kept"}    # the jobs started later don't inherit them


def test_a_hung_loop_stops_the_watchdog_pings(tmp_path, engines, notify_socket):
    """The pings come from the scheduling loop itself: a test blocks the loop through its
    heartbeat hook, and the pings stop (so systemd would restart the service); released, they resume."""
    cfg = write_config(tmp_path, [job("nightly", "true", "daily", "02:00")], settings=fast_settings())
    engine = engines(cfg, base_dir=tmp_path)
    notifier = sdnotify.Notifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "400000"})
    hang, hanging, release = threading.Event(), threading.Event(), threading.Event()

    def heartbeat() -> None:
        notifier.watchdog()
        if hang.is_set():
            hanging.set()
            release.wait(60)

    engine.max_sleep = notifier.watchdog_interval / 2
    engine.heartbeat = heartbeat
    engine.start()
    try:
        wait_for(lambda: len(notify_socket.watchdog_times()) >= 3, what="watchdog pings from the loop")
        hang.set()
        wait_for(hanging.is_set, what="the loop to hang in its heartbeat")
        count = len(notify_socket.watchdog_times())
        time.sleep(2.0)  # five watchdog intervals: a live loop would have pinged about ten times
        assert len(notify_socket.watchdog_times()) == count
        hang.clear()
        release.set()
        wait_for(lambda: len(notify_socket.watchdog_times()) >= count + 2, what="pings once the loop goes on")
    finally:
        release.set()
        engine.stop(grace=0)
        notifier.close()


def test_a_heartbeat_that_raises_is_logged_and_the_loop_goes_on(tmp_path, engines, caplog):
    cfg = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast_settings())
    engine = engines(cfg, base_dir=tmp_path)
    beats = []

    def heartbeat() -> None:
        beats.append(1)
        raise RuntimeError("broken hook")

    engine.heartbeat = heartbeat
    engine.max_sleep = 0.2
    engine.start()
    wait_for(lambda: len(beats) >= 3, what="the loop to keep waking")
    wait_for(lambda: engine.state.job("tick").get("last_status") == "success", what="a run despite the hook")
    engine.stop(grace=5)
    assert "heartbeat failed" in caplog.text
