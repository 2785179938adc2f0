"""A console attached to a daemon that answers slowly: frame gaps and key-to-action time.

The daemon runs for real; its control socket file (`config/.<stem>.run/control.sock`, see
insect_console/control.py) is renamed to `control.sock.real` (its listening socket keeps
working under the new name) and a proxy (`DelayProxy`, threads in this process) listens at
`control.sock` and forwards both ways. Each reply line from the daemon (a message with an
"id") is held `delay` seconds before it is passed on; events ("event" messages) and the
console's requests pass at once. The console, started on the pty, attaches (the daemon holds
the scheduler lock) through the proxy.

- Frame gaps: for a window, the cursor is moved every 50 ms (down three rows, up three), so a
  responsive console draws a frame every 50 ms; the longest time without any output on the
  terminal is the figure.
- Key to action: `/` is pressed at a random moment, and the time is taken until the filter bar
  (its placeholder text) is drawn; esc closes it again.

The same is measured with no delay (the proxy still in between) as the baseline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import random
import select
import socket
import threading
import time
from pathlib import Path

from bench.console import NAMES, console_available
from bench.fixtures import DEFAULT_JOBS, Daemon, ic_command, write_config
from bench.procs import Procs, Workspace
from bench.pty_app import PtyApp
from bench.report import Mode, Row, log, median, na_row, ratio

FILTER_BAR = "part of a job name"
"""The filter input's placeholder (insect_console/screens/jobs.py): drawn when `/` has acted."""
KEYS = (b"\x1b[B",) * 3 + (b"\x1b[A",) * 3
KEY_EVERY = 0.05
FIGURES = {
    "gap": ("attached console, daemon answering after {d:g} s: longest gap between two frames", "≤ 100 ms"),
    "key": ("attached console, daemon answering after {d:g} s: key to action (`/` → filter bar)", "≤ 100 ms"),
}


class DelayProxy:
    """Forwards Unix-socket connections at `path` to `target`, holding reply lines `delay` s."""

    def __init__(self, path: Path, target: Path, delay: float) -> None:
        self.path, self.target, self.delay = path, target, delay
        self.replies_held = 0
        self.events_passed = 0
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.listener.bind(str(path))
        finally:
            os.umask(old)
        self.listener.listen(8)
        self._spawn(self._accept)

    def _spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.listener], [], [], 0.2)[0]:
                continue
            try:
                client, _ = self.listener.accept()
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(str(self.target))
            except OSError:
                continue
            with self._lock:
                self._socks += [client, upstream]
            queue: list[tuple[float, int, bytes]] = []
            cond = threading.Condition()
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._replies, upstream, queue, cond)
            self._spawn(self._writer, client, queue, cond)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        """The console's requests, passed on at once."""
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _replies(self, upstream: socket.socket, queue: list, cond: threading.Condition) -> None:
        """The daemon's lines: replies are due `delay` s after they came, events at once."""
        seq = itertools.count()
        buf = b""
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        is_event = "event" in json.loads(line)
                    except ValueError:
                        is_event = False
                    due = time.monotonic() + (0.0 if is_event else self.delay)
                    if is_event:
                        self.events_passed += 1
                    else:
                        self.replies_held += 1
                    with cond:
                        heapq.heappush(queue, (due, next(seq), line + b"\n"))
                        cond.notify()
        with cond:
            heapq.heappush(queue, (time.monotonic() + self.delay, next(seq), b""))  # the end, after what is held
            cond.notify()

    def _writer(self, client: socket.socket, queue: list, cond: threading.Condition) -> None:
        while True:
            with cond:
                while not queue or queue[0][0] > time.monotonic():
                    if self._stop.is_set():
                        return
                    cond.wait(0.2 if not queue else max(0.0, min(0.2, queue[0][0] - time.monotonic())))
                _due, _seq, data = heapq.heappop(queue)
            if not data:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
                return
            try:
                client.sendall(data)
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in (self.listener, *socks):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        for t in threads:
            t.join(2)
        with contextlib.suppress(OSError):
            if self.path.is_socket():
                self.path.unlink()


def _frame_gaps(app: PtyApp, seconds: float) -> tuple[float, int]:
    """Move the cursor every 50 ms for `seconds`; (the longest time with no output, reads seen)."""
    t0 = time.perf_counter()
    for i in itertools.count():
        at = t0 + i * KEY_EVERY
        if at > t0 + seconds:
            break
        time.sleep(max(0.0, at - time.perf_counter()))
        app.send(KEYS[i % len(KEYS)])
    t1 = time.perf_counter()
    reads = app.reads_between(t0, t1)
    marks = [t0, *reads, t1]
    return max(b - a for a, b in zip(marks, marks[1:])), len(reads)


def _key_to_action(app: PtyApp, presses: int, rng: random.Random, delay: float) -> list[float]:
    out = []
    for _ in range(presses):
        time.sleep(0.5 + rng.random())  # a random moment against the console's once-a-second refresh
        mark = app.offset
        t0 = time.perf_counter()
        app.send(b"/")
        when = app.wait_for([FILTER_BAR], timeout=30, since=mark)
        if when is None:
            raise RuntimeError(f"the filter bar did not show within 30 s of `/`; screen: {app.text_since(mark)[-300:]!r}")
        out.append(when - t0)
        app.send(b"\x1b")  # esc: the bar closes
        # a console blocked on a status call handles esc late, and its focus moves back to the
        # table later still: a `/` queued behind them would be typed into the bar
        time.sleep(2 * delay + 1.0)
    return out


def _measure(ws: Workspace, procs: Procs, mode: Mode, delay: float) -> dict:
    d = ws.dir(f"attached-{delay:g}")
    cfg = write_config(ws.dir(f"attached-{delay:g}/config") / "batch_config.toml", DEFAULT_JOBS)
    daemon = Daemon(procs, d, cfg)
    proxy = app = None
    try:
        daemon.wait_ready(60)
        real = daemon.socket.with_name("control.sock.real")
        os.rename(daemon.socket, real)
        proxy = DelayProxy(daemon.socket, real, delay)
        app = PtyApp(procs, ic_command(cfg), cwd=d)
        when = app.wait_for(NAMES, timeout=120)
        if when is None:
            raise RuntimeError(f"the attached console drew no job table within 120 s; screen: {app.text_since(0)[-300:]!r}")
        start = when - app.spawned_at
        if "attached" not in app.text_since(0).lower() and "daemon" not in app.text_since(0).lower():
            log(f"attached: warning: the console's screen does not say it is attached (delay {delay:g} s)")
        time.sleep(2.0)
        gap, reads = _frame_gaps(app, mode.attached_window_s)
        time.sleep(2 * delay + 1.0)  # what the cursor keys queued up is drawn
        keys = _key_to_action(app, mode.attached_keys, random.Random(), delay)
        held, passed = proxy.replies_held, proxy.events_passed
    finally:
        if app is not None:
            app.stop()
        if proxy is not None:
            proxy.stop()
        daemon.stop()
    log(f"attached, delay {delay:g} s: table after {start:.2f} s, longest frame gap {gap * 1000:.0f} ms, key to action "
        f"{' / '.join(f'{k * 1000:.0f}' for k in keys)} ms")
    return {"start": start, "gap": gap, "reads": reads, "keys": keys, "held": held, "events": passed}


def attached_rows(ws: Workspace, procs: Procs, mode: Mode) -> list[Row]:
    delay = mode.attached_delay_s
    labels = {k: (label.format(d=delay), target) for k, (label, target) in FIGURES.items()}
    ok, why = console_available()
    if not ok:
        return [na_row(label, target, f"attached: console: {why}") for label, target in labels.values()]
    base = _measure(ws, procs, mode, 0.0)
    slow = _measure(ws, procs, mode, delay)
    w = mode.attached_window_s
    keys, bkeys = slow["keys"], base["keys"]
    note = (f"attached: replies held {delay:g} s, events passed at once (proxy counted {slow['held']} replies, {slow['events']} events); "
            f"console start to the table {slow['start']:.2f} s (no delay: {base['start']:.2f} s); output reads in the {w:.0f} s window: "
            f"{slow['reads']} (no delay: {base['reads']}); key to action every press: {', '.join(f'{k:.2f}' for k in keys)} s "
            f"(no delay: {', '.join(f'{k:.3f}' for k in bkeys)} s)")
    label, target = labels["gap"]
    label_k, target_k = labels["key"]
    return [
        Row(f"{label}, {w:.0f} s of a cursor key every 50 ms (baseline: answering at once)", f"{slow['gap'] * 1000:.0f} ms",
            f"{base['gap'] * 1000:.0f} ms", ratio(slow["gap"], base["gap"]), target, slow["gap"] <= 0.1, [note],
            raw={"slow": slow, "base": base}),
        Row(f"{label_k}, median / max of {len(keys)} (baseline: answering at once)",
            f"{median(keys) * 1000:.0f} / {max(keys) * 1000:.0f} ms", f"{median(bkeys) * 1000:.0f} / {max(bkeys) * 1000:.0f} ms",
            ratio(max(keys), max(bkeys)), target_k, max(keys) <= 0.1),
    ]
