"""The daemon's control channel: a Unix socket speaking one JSON object per line.

A client (the console, `run-job`, `control-stdio` for a console over ssh) sends requests
`{"id": 1, "cmd": "status"}` and gets `{"id": 1, "ok": true, "result": ...}` or
`{"id": 1, "ok": false, "error": "..."}`. After `subscribe` it also gets engine events
`{"event": "output", ...}`. The commands and their answers are commands.py's (the wire forms
protocol.py's); this module moves the bytes: the server's socket and clients, and the client's
side.

The socket is 0600 inside the 0700 runtime directory, and the peer's uid is checked with
SO_PEERCRED: only the daemon's own user or root may connect. Each client has a bounded output
buffer; a client that does not read is dropped, it never slows the scheduler. A request line
longer than MAX_REQUEST is never read whole: the client gets an error line and is dropped.
At most MAX_CLIENTS are connected at once (more are refused as they come, with one log line
per burst) and a client that has sent nothing SILENT_CLIENT_TIMEOUT seconds after connecting is
closed, so a flood of idle connections can't take the descriptors the runs need.
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
from typing import Any, Callable

from insect_console import events as ev
from insect_console.errors import DaemonGone
from insect_console.commands import Commands, Served, Session
from insect_console.protocol import decode_active, encode_active, error_from_reply, error_reply, request_too_long
from insect_console.transport import Transport, TransportError, UnixTransport

__all__ = ["ControlClient", "ControlServer", "DaemonGone", "connect_to_daemon", "decode_active", "encode_active", "socket_path"]

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
    name = data.get("event")
    cls = _EVENT_TYPES.get(name) if isinstance(name, str) else None
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


def socket_path(runtime_dir: Path) -> Path:
    return runtime_dir / SOCKET_NAME


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def peer_allowed(uid: int) -> bool:
    return uid == os.geteuid() or uid == 0


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected_at = time.monotonic()
        self.spoke = False  # sent anything yet
        self.inbox = bytearray()
        self.outbox: deque[bytes] = deque()
        self.queued = 0
        self.session = Session()
        self.dropped = False
        self.eof = False
        """The client closed its side: it is answered what it asked, then closed."""

    @property
    def subscribed(self) -> bool:
        return self.session.subscribed


class ControlServer:
    """Serves one engine on a Unix socket, on a thread of its own."""

    def __init__(self, engine: Served, path: Path, max_buffer: int = MAX_CLIENT_BUFFER) -> None:
        self.engine = engine
        self.commands = Commands(engine)
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
            client.session.close()
            client.sock.close()
        self._clients.clear()
        self.commands.close()
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
            client.dropped = True
            return
        if not data:
            client.eof = True
            return
        client.spoke = True
        client.inbox += data
        while (cut := client.inbox.find(b"\n")) >= 0 and cut <= MAX_REQUEST:
            line = bytes(client.inbox[:cut])
            del client.inbox[: cut + 1]
            self.commands.handle(client.session, line, lambda reply: self._reply(client, reply))
        if cut > MAX_REQUEST or len(client.inbox) > MAX_REQUEST:  # never read a line whole: say why, then drop the client
            log.warning("control: dropped a client whose request was longer than %d KiB", MAX_REQUEST // 1024)
            client.inbox = bytearray()
            self._reply(client, request_too_long(MAX_REQUEST))
            self._flush(client)
            client.dropped = True

    def _reply(self, client: _Client, reply: dict[str, Any]) -> None:
        """Queue an answer (from the server's thread, or a command pool's thread)."""
        try:
            data = (json.dumps(reply, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        except (TypeError, ValueError) as e:
            data = (json.dumps(error_reply(reply.get("id"), f"internal error: answer not encodable ({e})")) + "\n").encode()
        with self._lock:
            self._enqueue(client, data)
        self._wake()

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
            with client.session.lock:
                if client.eof and not client.outbox and not client.session.in_flight:
                    client.dropped = True  # it closed its side and has every answer
            watched = self._sel.get_map().get(client.sock.fileno())
            if client.dropped:
                if client.subscribed and client.queued:
                    log.warning("control: dropped a client that stopped reading (%d bytes waiting)", client.queued)
                    self.dropped_clients += 1
                if watched is not None:
                    self._sel.unregister(client.sock)
                with self._lock:
                    self._clients.pop(client.sock.fileno(), None)
                client.session.close()
                client.sock.close()
                continue
            want = (0 if client.eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if client.outbox else 0)
            if not want:  # closed its side, answers still being worked out: watch it again once they come
                if watched is not None:
                    self._sel.unregister(client.sock)
            elif watched is None:
                self._sel.register(client.sock, want, "client")
            elif watched.events != want:
                self._sel.modify(client.sock, want, "client")


class ControlClient:
    """A connection to a daemon over a `Transport` (its Unix socket, given as a path, or the
    pipes of `ssh … control-stdio`). Events go to `on_event` on the client's reader thread."""

    MAX_LINE = 64 * 1024 * 1024
    """A line from the daemon longer than this ends the connection (a broken peer, not a daemon)."""

    def __init__(self, target: Path | Transport, on_event: Callable[[ev.Event], None] | None = None, on_close: Callable[[], None] | None = None,
                 timeout: float = 10.0) -> None:
        self.on_event = on_event
        self.on_close = on_close
        self.timeout = timeout
        if isinstance(target, Path):
            try:
                target = UnixTransport(target)
            except TransportError as e:
                raise DaemonGone(str(e)) from None
        self.transport: Transport = target
        self.sock = getattr(target, "sock", None)
        """The Unix socket, when that is the transport (tests cut it to play an SSH drop)."""
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self.refusal: str | None = None
        """The daemon's last error that answered no request (why it dropped us: a request too long...)."""
        self._reader = threading.Thread(target=self._read_loop, name="control-client", daemon=True)
        self._reader.start()

    def call(self, cmd: str, *, wait: float | None = None, **args: Any) -> Any:
        """Send one request and wait (`wait` s, default `timeout`) for its reply; raises
        UserError with the daemon's message, DaemonGone when there is no answer."""
        rid = next(self._ids)
        done = threading.Event()
        slot: list = []
        with self._lock:
            self._pending[rid] = (done, slot)
        try:
            self.transport.send((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
        except OSError:
            with self._lock:
                self._pending.pop(rid, None)
            raise DaemonGone("the daemon closed the connection") from None
        if not done.wait(self.timeout if wait is None else wait) or not slot:
            with self._lock:
                self._pending.pop(rid, None)
            raise DaemonGone("the daemon did not answer" if not self.closed.is_set() else "the daemon closed the connection")
        reply = slot[0]
        if not reply.get("ok"):
            raise error_from_reply(reply)
        return reply.get("result")

    def why_closed(self) -> str | None:
        """What the transport said as it ended (ssh's last error line), else the daemon's last
        refusal of no request in particular, if anything."""
        return self.transport.why_closed() or self.refusal

    def _read_loop(self) -> None:
        buf = b""
        try:
            while True:
                data = self.transport.recv()
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._dispatch(line)
                if len(buf) > self.MAX_LINE:
                    log.error("%s sent a line longer than %d MiB; closing the connection", self.transport.label, self.MAX_LINE >> 20)
                    break
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
        except (ValueError, RecursionError):
            return
        if not isinstance(message, dict):
            return
        if "event" in message:
            event = decode_event(message)
            if event is not None and self.on_event:
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("event listener failed")
            return
        if message.get("id") is None and message.get("ok") is False:
            self.refusal = str(message.get("error") or "refused")
        with self._lock:
            waiting = self._pending.pop(message.get("id"), None)
        if waiting:
            waiting[1].append(message)
            waiting[0].set()

    def close(self) -> None:
        self.transport.close()
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
