"""The daemon's control channel: a Unix socket speaking one JSON object per line.

A client (the console, `run-job`) sends requests `{"id": 1, "cmd": "status"}` and gets
`{"id": 1, "ok": true, "result": ...}` or `{"id": 1, "ok": false, "error": "..."}`. After
`subscribe` it also gets engine events `{"event": "output", ...}`. Commands: status, run
(job), kill (job), reload, subscribe, unsubscribe.

The socket is 0600 inside the 0700 runtime directory, and the peer's uid is checked with
SO_PEERCRED: only the daemon's own user or root may connect. Each client has a bounded output
buffer; a client that does not read is dropped, it never slows the scheduler. At most
MAX_CLIENTS are connected at once (more are refused as they come, with one log line per burst)
and a client that has sent nothing SILENT_CLIENT_TIMEOUT seconds after connecting is closed, so
a flood of idle connections can't take the descriptors the runs need.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Protocol

from insect_console import events as ev
from insect_console.errors import AlreadyRunning, UserError
from insect_console.surface import ActiveRun, JobStatus
from insect_console.textfmt import parse_local

log = logging.getLogger("insect_console.control")

MAX_CLIENT_BUFFER = 4 * 1024 * 1024
MAX_REQUEST = 64 * 1024
MAX_CLIENTS = 64
"""Clients connected at once (consoles, run-jobs); more are refused at accept."""
SILENT_CLIENT_TIMEOUT = 5.0
"""Seconds a new client has to send its first request; one that sends nothing is closed."""
ACCEPT_PAUSE = 0.5
"""Seconds accepting pauses when the process is out of descriptors (EMFILE), instead of spinning."""
_REFUSED = b'{"id": null, "ok": false, "error": "the daemon has too many clients; try again later", "kind": "TooManyClients"}\n'
SOCKET_NAME = "control.sock"

_EVENT_NAMES = {
    ev.RunStarted: "run_started",
    ev.OutputLines: "output",
    ev.RunFinished: "run_finished",
    ev.RunSkipped: "run_skipped",
    ev.RunWaiting: "run_waiting",
    ev.Notification: "notification",
    ev.ConfigReloaded: "config_reloaded",
    ev.ClockJumped: "clock_jumped",
}
_EVENT_TYPES = {name: cls for cls, name in _EVENT_NAMES.items()}


def encode_event(event: ev.Event) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["event"] = _EVENT_NAMES[type(event)]
    return data


def decode_event(data: dict[str, Any]) -> ev.Event | None:
    cls = _EVENT_TYPES.get(data.get("event", ""))
    if cls is None:
        return None
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in fields}
    if cls is ev.OutputLines:
        values["lines"] = tuple(values.get("lines", ()))
    try:
        return cls(**values)
    except TypeError:
        return None


def encode_active(run: ActiveRun) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["start_time"] = run.start_time.astimezone().isoformat(timespec="milliseconds") if run.start_time else None
    return data


def decode_active(data: dict[str, Any]) -> ActiveRun:
    fields = {f.name for f in dataclasses.fields(ActiveRun)}
    values = {k: v for k, v in data.items() if k in fields}
    values["start_time"] = parse_local(values.get("start_time"))
    values.setdefault("job_name", "?")
    values.setdefault("run_id", "")
    values.setdefault("trigger", "")
    return ActiveRun(**values)


def socket_path(runtime_dir: Path) -> Path:
    return runtime_dir / SOCKET_NAME


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def peer_allowed(uid: int) -> bool:
    return uid == os.geteuid() or uid == 0


class Served(Protocol):
    """What the server needs of the engine it serves (an `Engine`)."""

    def status(self) -> list[JobStatus]: ...

    def active_runs(self) -> dict[str, ActiveRun]: ...

    def run_now(self, name: str) -> ActiveRun: ...

    def kill(self, name: str) -> bool: ...

    def request_reload(self) -> None: ...

    def subscribe(self, listener: Callable[[ev.Event], None]) -> Callable[[], None]: ...


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected_at = time.monotonic()
        self.spoke = False  # sent anything yet
        self.inbox = bytearray()
        self.outbox: deque[bytes] = deque()
        self.queued = 0
        self.subscribed = False
        self.dropped = False


class ControlServer:
    """Serves one engine on a Unix socket, on a thread of its own."""

    def __init__(self, engine: Served, path: Path, max_buffer: int = MAX_CLIENT_BUFFER) -> None:
        self.engine = engine
        self.path = path
        self.max_buffer = max_buffer
        self._clients: dict[int, _Client] = {}
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.dropped_clients = 0
        self._accept_paused_until: float | None = None
        self._burst: dict[str, int] | None = None  # refused and silent clients since the burst began
        self._burst_last = 0.0

    @classmethod
    def serve(cls, engine: Served, path: Path) -> "ControlServer | None":
        """A started server, or None (logged) where the socket can't be made: the engine still schedules."""
        server = cls(engine, path)
        try:
            server.start()
        except OSError as e:
            log.error("no control socket (%s): consoles and run-job can't attach", e.strerror)
            return None
        return server

    def start(self) -> None:
        # we hold the scheduler lock, so a socket file left here is a dead daemon's
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._listener.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._unsubscribe = self.engine.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control socket at %s", self.path)

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        self._stop = True
        self._wake()
        if self._thread:
            self._thread.join(timeout=5)
        for client in list(self._clients.values()):
            client.sock.close()
        self._clients.clear()
        try:
            self._listener.close()
            self.path.unlink()
        except (OSError, AttributeError):
            pass
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    # -- engine thread side: enqueue only, never block ----------------------------

    def _on_event(self, event: ev.Event) -> None:
        with self._lock:
            targets = [c for c in self._clients.values() if c.subscribed and not c.dropped]
        if not targets:
            return  # encode only for someone: a chatty job with no console attached costs nothing here
        data = (json.dumps(encode_event(event), ensure_ascii=False) + "\n").encode()
        with self._lock:
            for client in targets:
                self._enqueue(client, data)
        if targets:
            self._wake()

    def _enqueue(self, client: _Client, data: bytes) -> None:
        if client.queued + len(data) > self.max_buffer:
            client.dropped = True
            return
        client.outbox.append(data)
        client.queued += len(data)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # -- the server thread -----------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop:
            for key, mask in self._sel.select(timeout=self._next_timeout()):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    os.read(self._wake_r, 4096)
                else:
                    client = self._clients.get(key.fd)
                    if client is None:
                        continue
                    if mask & selectors.EVENT_READ:
                        self._read(client)
                    if mask & selectors.EVENT_WRITE and not client.dropped:
                        self._flush(client)
            self._sweep()

    def _next_timeout(self) -> float | None:
        """Until the next thing the server must do by itself: close a silent client, accept
        again after a pause, end a burst; None (sleep until something happens) when nothing."""
        now = time.monotonic()
        times = [c.connected_at + SILENT_CLIENT_TIMEOUT for c in self._clients.values() if not c.spoke]
        if self._accept_paused_until is not None:
            times.append(self._accept_paused_until)
        if self._burst is not None:
            times.append(self._burst_last + SILENT_CLIENT_TIMEOUT * 2)
        return max(0.0, min(times) - now) if times else None

    def _accept(self) -> None:
        for _ in range(MAX_CLIENTS):  # a burst of connections is taken in few wake-ups
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors: stop watching the listener for a moment (it would wake
                    # the loop at once, again and again), and say so once per burst
                    self._in_burst("refused")
                    self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                    self._sel.unregister(self._listener)
                return
            self._take(sock)

    def _take(self, sock: socket.socket) -> None:
        try:
            uid = peer_uid(sock)
        except OSError:
            sock.close()
            return
        if not peer_allowed(uid):
            log.warning("control: refused a client with uid %d", uid)
            try:
                sock.sendall(b'{"ok": false, "error": "permission denied"}\n')
            except OSError:
                pass
            sock.close()
            return
        if len(self._clients) >= MAX_CLIENTS:
            self._in_burst("refused")
            try:
                sock.send(_REFUSED, socket.MSG_DONTWAIT)
            except OSError:
                pass
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock)
        with self._lock:
            self._clients[sock.fileno()] = client
        self._sel.register(sock, selectors.EVENT_READ, "client")

    def _in_burst(self, what: str) -> None:
        """Count a refused or silent client; the first of a burst is logged, the burst's end too."""
        self._burst_last = time.monotonic()
        if self._burst is None:
            self._burst = {"refused": 0, "silent": 0}
            log.warning(
                "control: %d clients connected (the most allowed) or clients that send nothing; "
                "refusing new connections and closing silent ones (one line per burst)",
                len(self._clients),
            )
        self._burst[what] += 1

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            client.dropped = True
            return
        client.spoke = True
        client.inbox += data
        while b"\n" in client.inbox:
            line, _, rest = bytes(client.inbox).partition(b"\n")
            client.inbox = bytearray(rest)
            reply = self._handle(client, line)
            with self._lock:
                self._enqueue(client, (json.dumps(reply, ensure_ascii=False) + "\n").encode())
        if len(client.inbox) > MAX_REQUEST:
            client.dropped = True

    def _handle(self, client: _Client, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as e:
            return {"id": None, "ok": False, "error": f"bad request: {e}"}
        rid = request.get("id")
        try:
            return {"id": rid, "ok": True, "result": self._command(client, request)}
        except (UserError, ValueError, KeyError) as e:
            return {"id": rid, "ok": False, "error": str(e).strip("'\""), "kind": type(e).__name__}
        except Exception as e:  # a bad request must never take the daemon down
            log.exception("control command failed")
            return {"id": rid, "ok": False, "error": f"internal error: {e}"}

    def _command(self, client: _Client, request: dict[str, Any]) -> Any:
        cmd = request.get("cmd")
        engine = self.engine
        if cmd == "status":
            active = {name: encode_active(a) for name, a in engine.active_runs().items()}
            return {"pid": os.getpid(), "jobs": [s.to_wire() for s in engine.status()], "active": active}
        if cmd == "run":
            active = engine.run_now(str(request["job"]))
            return {"run_id": active.run_id}
        if cmd == "kill":
            return {"killed": engine.kill(str(request["job"]))}
        if cmd == "reload":
            engine.request_reload()
            return {}
        if cmd == "subscribe":
            client.subscribed = True
            return {}
        if cmd == "unsubscribe":
            client.subscribed = False
            return {}
        raise ValueError(f"unknown command {cmd!r}; commands: status, run, kill, reload, subscribe, unsubscribe")

    def _flush(self, client: _Client) -> None:
        with self._lock:
            while client.outbox:
                data = client.outbox[0]
                try:
                    sent = client.sock.send(data)
                except BlockingIOError:
                    break
                except OSError:
                    client.dropped = True
                    break
                client.queued -= sent
                if sent < len(data):
                    client.outbox[0] = data[sent:]
                    break
                client.outbox.popleft()

    def _sweep(self) -> None:
        """Drop dead, stuck or silent clients; watch for writability only where output is
        waiting; accept again after a pause; log the end of a burst."""
        now = time.monotonic()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            if not client.spoke and not client.dropped and now - client.connected_at >= SILENT_CLIENT_TIMEOUT:
                client.dropped = True
                self._in_burst("silent")
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        if self._burst is not None and now - self._burst_last >= SILENT_CLIENT_TIMEOUT * 2:
            log.info("control: the burst of connections is over: %d refused, %d closed for sending nothing", self._burst["refused"], self._burst["silent"])
            self._burst = None
        for client in clients:
            if client.dropped:
                if client.subscribed and client.queued:
                    log.warning("control: dropped a client that stopped reading (%d bytes waiting)", client.queued)
                    self.dropped_clients += 1
                self._sel.unregister(client.sock)
                with self._lock:
                    self._clients.pop(client.sock.fileno(), None)
                client.sock.close()
                continue
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbox else 0)
            if self._sel.get_key(client.sock).events != want:
                self._sel.modify(client.sock, want, "client")


class DaemonGone(UserError):
    """The daemon closed the connection (it stopped or crashed)."""


class ControlClient:
    """A connection to a daemon. Events go to `on_event` on the client's reader thread."""

    def __init__(self, path: Path, on_event: Callable[[ev.Event], None] | None = None, on_close: Callable[[], None] | None = None, timeout: float = 10.0) -> None:
        self.path = path
        self.on_event = on_event
        self.on_close = on_close
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(path))
        except OSError as e:
            self.sock.close()
            raise DaemonGone(f"can't connect to the daemon at {path}: {e.strerror}") from None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="control-client", daemon=True)
        self._reader.start()

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request and wait for its reply; raises UserError with the daemon's message."""
        rid = next(self._ids)
        done = threading.Event()
        slot: list = []
        with self._lock:
            self._pending[rid] = (done, slot)
        try:
            self.sock.sendall((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
        except OSError:
            raise DaemonGone("the daemon closed the connection") from None
        if not done.wait(self.timeout) or not slot:
            with self._lock:
                self._pending.pop(rid, None)
            raise DaemonGone("the daemon did not answer" if not self.closed.is_set() else "the daemon closed the connection")
        reply = slot[0]
        if not reply.get("ok"):
            kind = reply.get("kind")
            if kind == "AlreadyRunning":
                raise AlreadyRunning(reply.get("error", "already running"))
            if kind == "JobNotFound":
                raise UserError(reply.get("error", "no such job"))
            raise UserError(reply.get("error", "the daemon refused the request"))
        return reply.get("result")

    def _read_loop(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._dispatch(line)
        except OSError:
            pass
        finally:
            self.closed.set()
            with self._lock:
                pending = list(self._pending.values())
                self._pending.clear()
            for done, _slot in pending:
                done.set()
            if self.on_close:
                try:
                    self.on_close()
                except Exception:
                    log.exception("on_close failed")

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if "event" in message:
            event = decode_event(message)
            if event is not None and self.on_event:
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("event listener failed")
            return
        with self._lock:
            waiting = self._pending.pop(message.get("id"), None)
        if waiting:
            waiting[1].append(message)
            waiting[0].set()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(timeout=2)


def connect_to_daemon(runtime_dir: Path, **kwargs: Any) -> ControlClient | None:
    """A client for the daemon holding this config, or None when no daemon listens."""
    path = socket_path(runtime_dir)
    if not path.exists():
        return None
    try:
        return ControlClient(path, **kwargs)
    except DaemonGone:
        return None
