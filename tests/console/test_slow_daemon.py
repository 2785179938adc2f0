"""An attached console stays responsive when the daemon is slow to answer.

A real daemon, with a proxy in front of its control socket that holds every reply for 3 s (the
daemon's events pass at once). The console asks for status and runs through the socket only on
workers, and answers status from its cache, so a key is handled at once however slow the daemon.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import Daemon, job, write_config
from insect_console.app import create_app
from insect_console.config import ConfigStore
from insect_console.remote import RemoteEngine
from insect_console.screens import HelpScreen, JobsScreen

from .conftest import console_settings, fixed_stats, run, screen_text, wait_until

DELAY = 3.0


class DelayingProxy:
    """Listens at `path`, forwards each connection to `target`; replies from it wait `delay` s."""

    def __init__(self, path: Path, target: Path, delay: float) -> None:
        self.path, self.target, self.delay = path, target, delay
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.replies_held = 0
        self._socks: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.target))
            self._socks += [client, upstream]
            out: queue.Queue = queue.Queue()
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, out), daemon=True).start()
            threading.Thread(target=self._release, args=(out, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, held: queue.Queue | None) -> None:
        buf = b""
        try:
            while data := src.recv(65536):
                if held is None:
                    dst.sendall(data)
                    continue
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    is_reply = "event" not in json.loads(line)
                    self.replies_held += is_reply
                    held.put((time.monotonic() + (self.delay if is_reply else 0), line + b"\n"))
        except OSError:
            pass
        finally:
            if held is not None:
                held.put(None)
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _release(self, held: queue.Queue, dst: socket.socket) -> None:
        while (item := held.get()) is not None:
            when, line = item
            time.sleep(max(0.0, when - time.monotonic()))
            try:
                dst.sendall(line)
            except OSError:
                return

    def close(self) -> None:
        for s in self._socks:
            s.close()


@pytest.fixture
def slow_daemon(tmp_path: Path):
    config = write_config(tmp_path, [job("steps", f"{sys.executable} -c \"import time; time.sleep(2)\"", "daily", "02:00"),
                                     job("other", "true", "daily", "02:00")], console_settings(), rel="config.toml")
    d = Daemon(tmp_path, config=str(config))
    proxy = None
    try:
        d.started()
        store = ConfigStore(config, tmp_path)
        sock = store.runtime_dir / "control.sock"
        real = sock.with_name("control.sock.real")
        os.rename(sock, real)  # the daemon's listening socket keeps working under its new name
        proxy = DelayingProxy(sock, real, DELAY)
        yield d, store, proxy
    finally:
        if proxy is not None:
            proxy.close()
        d.stop()


def test_keys_are_handled_at_once_while_the_daemon_takes_3_s_to_answer(slow_daemon):
    daemon, store, proxy = slow_daemon
    remote = RemoteEngine(store)
    remote.start()  # subscribe + the first status: 2 × 3 s, before the app runs
    app = create_app(remote, stats_provider=fixed_stats)
    took: list[float] = []

    async def press(pilot, key: str, done) -> None:
        """Press `key`; the time until `done()` is what the operator waits (Pilot's own press
        also waits for the whole process to go idle, which is not the key's handling)."""
        t0 = time.perf_counter()
        pressing = asyncio.ensure_future(pilot.press(key))
        while not done():
            assert time.perf_counter() - t0 < 10, f"{key} was not handled"
            await asyncio.sleep(0.002)
        took.append(time.perf_counter() - t0)
        await pressing

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: f"attached to daemon pid {daemon.pid}" in screen_text(app), what="the banner")
            held = proxy.replies_held
            await pilot.press("r")  # run steps: the daemon's answer takes 3 s, on a worker
            await wait_until(pilot, lambda: proxy.replies_held > held, timeout=10, what="the run request to reach the daemon")
            for _ in range(3):  # while that answer (and the status refreshes the run's events ask for) are held
                await press(pilot, "question_mark", lambda: isinstance(app.screen, HelpScreen))
                await press(pilot, "escape", lambda: isinstance(app.screen, JobsScreen))
            steps = lambda: next(s for s in remote.status() if s.name == "steps")  # noqa: E731
            await wait_until(pilot, lambda: steps().last_status == "success", timeout=30, what="the run's result in the cached status")

    try:
        run(go())
    finally:
        remote.stop()
    # each key was handled without waiting for the daemon (a blocked UI thread would take ~3 s)
    assert max(took) < 1.0, took
    assert statistics.median(took) < 0.1, took
