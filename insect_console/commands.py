"""The daemon's side of the control protocol: parsing a request line, the command table, and
the answers (the versions and wire forms are protocol.py's; the socket is control.py's).

Everything a client sends is untrusted: a request that is not a JSON object, an unknown command
or a bad argument gets `{"ok": false, "error": "one line"}`, never a traceback or a dead daemon.
Commands that read or write files run on a small pool of their own (`Commands.slow`), never on
the server's thread, so a long history scan for one console never holds back another console's
answers or anyone's live output. Every answer is bounded, so it fits a client's output buffer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from insect_console import __version__
from insect_console.config import Config
from insect_console.errors import UserError
from insect_console.events import Listener
from insect_console.history import STATUSES, HistoryPage, HistoryQuery
from insect_console.jobs import Job, make_job
from insect_console.protocol import (OLDEST_VERSION, PROTOCOL_VERSION, BadRequest, ProtocolMismatch, config_to_wire, encode_active,
                                     error_reply, iso)
from insect_console.runoutput import read_since
from insect_console.surface import ActiveRun, JobStatus
from insect_console.sysstats import PsutilStats

log = logging.getLogger("insect_console.commands")

MAX_CURSORS = 8
"""History cursors one connection may hold; opening another closes its oldest."""
MAX_IN_FLIGHT = 4
"""Slow requests of one connection running or waiting at once; more are refused until one ends."""
MAX_PAGE = 1000
MAX_PREVIEW = 100
MAX_TAIL_BYTES = 512 * 1024
"""Text an `output_tail` answer carries at most (the earliest lines are left out first)."""
MAX_SINCE_BYTES = 256 * 1024
MAX_RECORD_OUTPUT = 256 * 1024
"""A `run_record` answer keeps at most this much of the record's output tail (its end)."""
POOL_WORKERS = 2


class Served(Protocol):
    """What the commands need of the engine they serve (an `Engine`)."""

    config: Config

    @property
    def log_dir(self) -> Path: ...

    @property
    def where(self) -> str: ...

    def status(self) -> list[JobStatus]: ...

    def active_runs(self) -> dict[str, ActiveRun]: ...

    def run_now(self, name: str) -> ActiveRun: ...

    def kill(self, name: str) -> bool: ...

    def request_reload(self) -> None: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...

    def add_job(self, job: Job) -> None: ...

    def replace_job(self, name: str, job: Job) -> None: ...

    def remove_job(self, name: str) -> None: ...

    def set_enabled(self, name: str, enabled: bool) -> None: ...

    def preview(self, job: Job, count: int = 5) -> list[dt.datetime]: ...

    def history(self, query: HistoryQuery) -> Any: ...

    def run_record(self, slim_record: Mapping[str, Any]) -> dict[str, Any] | None: ...

    def recent_results(self, names: list[str], width: int) -> dict[str, list[tuple[str, float | None]]]: ...

    def output_tail(self, path: str, max_lines: int) -> tuple[list[str], bool, int]: ...


# -- arguments ----------------------------------------------------------------------------------


def _text(args: Mapping[str, Any], key: str, *, optional: bool = False, limit: int = 4096) -> str | None:
    value = args.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"{args.get('cmd')}: {key!r} must be a non-empty string")
    return value


def _int(args: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{args.get('cmd')}: {key!r} must be a whole number")
    return max(low, min(high, value))


def _job(args: Mapping[str, Any], key: str = "job") -> Job:
    data = args.get(key)
    if not isinstance(data, dict):
        raise BadRequest(f"{args.get('cmd')}: {key!r} must be a job (an object with name, command, schedule_type, schedule_time)")
    return make_job(data)


def _date(args: Mapping[str, Any], key: str) -> dt.date | None:
    value = args.get(key)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadRequest(f"history_open: {key!r} must be a date, YYYY-MM-DD") from None


def _query(args: Mapping[str, Any]) -> HistoryQuery:
    q = args.get("query") or {}
    if not isinstance(q, dict):
        raise BadRequest("history_open: 'query' must be an object")
    q = {"cmd": "history_open", **q}
    status = _text(q, "status", optional=True)
    if status is not None and status not in STATUSES:
        raise BadRequest(f"history_open: status must be one of {', '.join(STATUSES)}")
    limit = q.get("limit")
    return HistoryQuery(job=_text(q, "job", optional=True), status=status, since=_date(q, "since"), until=_date(q, "until"),
                        limit=None if limit is None else _int(q, "limit", 50, 1, 10**9))


def _clip_lines(lines: list[str], limit: int) -> tuple[list[str], bool]:
    """The last of `lines` that fit in `limit` bytes of text; True when some were left out."""
    total, keep = 0, len(lines)
    while keep > 0 and total + len(lines[keep - 1]) + 1 <= limit:
        keep -= 1
        total += len(lines[keep]) + 1
    return lines[keep:], keep > 0


# -- one connection's state ---------------------------------------------------------------------


class _Cursor:
    """A history cursor with a lock: two pages of one cursor are never read at once."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.lock = threading.Lock()


class Session:
    """What the daemon keeps for one connection: its subscription and its history cursors
    (bounded in number, all closed with the connection)."""

    def __init__(self) -> None:
        self.subscribed = False
        self.version = OLDEST_VERSION
        self._cursors: OrderedDict[int, _Cursor] = OrderedDict()
        self._ids = itertools.count(1)
        self.lock = threading.Lock()
        """Held while a slow answer is handed over and counted done, so the server sees the one or the other."""
        self.in_flight = 0
        self.closed = False

    def add_cursor(self, cursor: Any) -> int:
        with self.lock:
            if self.closed:
                cursor.close()
                raise BadRequest("the connection is closing")
            cid = next(self._ids)
            self._cursors[cid] = _Cursor(cursor)
            while len(self._cursors) > MAX_CURSORS:
                _old, oldest = self._cursors.popitem(last=False)
                oldest.cursor.close()
            return cid

    def cursor(self, cid: Any) -> _Cursor:
        with self.lock:
            found = self._cursors.get(cid) if isinstance(cid, int) else None
        if found is None:
            raise BadRequest(f"no history cursor {cid!r} on this connection (closed, or one of more than {MAX_CURSORS})")
        return found

    def close_cursor(self, cid: Any) -> None:
        with self.lock:
            found = self._cursors.pop(cid, None) if isinstance(cid, int) else None
        if found is not None:
            found.cursor.close()

    def close(self) -> None:
        """The connection ended: stop every scan it started."""
        with self.lock:
            self.closed = True
            cursors, self._cursors = list(self._cursors.values()), OrderedDict()
        for c in cursors:
            c.cursor.close()


# -- the command table ------------------------------------------------------------------------


class Commands:
    """Answers the requests of every connection to one engine's daemon."""

    def __init__(self, engine: Served) -> None:
        self.engine = engine
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._stats: Any = None
        fast: dict[str, Callable[[Session, dict[str, Any]], Any]] = {
            "hello": self.hello, "status": self.status, "run": self.run, "kill": self.kill, "reload": self.reload,
            "subscribe": self.subscribe, "unsubscribe": self.unsubscribe, "config": self.config,
            "history_close": self.history_close,
        }
        slow: dict[str, Callable[[Session, dict[str, Any]], Any]] = {
            "add_job": self.add_job, "replace_job": self.replace_job, "remove_job": self.remove_job,
            "set_enabled": self.set_enabled, "preview": self.preview, "history_open": self.history_open,
            "history_page": self.history_page, "run_record": self.run_record, "recent_results": self.recent_results,
            "output_tail": self.output_tail, "output_since": self.output_since, "stats": self.stats,
        }
        self.table = {**fast, **slow}
        self.slow = frozenset(slow)

    @property
    def features(self) -> list[str]:
        return sorted(self.table)

    # -- requests ----------------------------------------------------------------------------

    def handle(self, session: Session, line: bytes, reply: Callable[[dict[str, Any]], None]) -> None:
        """Answer one request line through `reply`: at once, or from the pool for a slow command
        (`reply` is then called on a pool thread)."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as e:
            reply(error_reply(None, f"bad request: not JSON ({str(e)[:120]})"))
            return
        if not isinstance(request, dict):
            reply(error_reply(None, "bad request: a request is a JSON object, e.g. {\"id\": 1, \"cmd\": \"status\"}"))
            return
        rid = request.get("id")
        if not isinstance(rid, (int, str)) or isinstance(rid, bool):
            rid = None
        command = self.table.get(request.get("cmd")) if isinstance(request.get("cmd"), str) else None
        if command is None:
            reply(error_reply(rid, f"unknown command {request.get('cmd')!r}; commands: {', '.join(self.features)}"))
            return
        if request["cmd"] not in self.slow:
            reply(self._answer(command, session, request, rid))
            return
        with session.lock:
            if session.in_flight >= MAX_IN_FLIGHT:
                reply(error_reply(rid, f"busy: {MAX_IN_FLIGHT} requests of this connection are in progress; wait for their answers"))
                return
            session.in_flight += 1

        def work() -> None:
            answer = error_reply(rid, "internal error")
            try:
                answer = self._answer(command, session, request, rid)
            finally:
                with session.lock:  # queued and counted done at once (see ControlServer._sweep)
                    session.in_flight -= 1
                    reply(answer)

        try:
            self._workers().submit(work)
        except RuntimeError:  # the daemon is stopping
            with session.lock:
                session.in_flight -= 1
            reply(error_reply(rid, "the daemon is stopping"))

    def _answer(self, command: Callable[[Session, dict[str, Any]], Any], session: Session, request: dict[str, Any], rid: Any) -> dict[str, Any]:
        try:
            return {"id": rid, "ok": True, "result": command(session, request)}
        except (UserError, ValueError, KeyError, TypeError) as e:
            return error_reply(rid, e)
        except Exception as e:  # a bad request must never take the daemon down
            log.exception("control command %s failed", request.get("cmd"))
            return error_reply(rid, f"internal error: {e}")

    def _workers(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="control-cmd")
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- version 1 ------------------------------------------------------------------------------

    def hello(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        version = args.get("version", OLDEST_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadRequest(f"hello: 'version' must be a whole number (this daemon speaks {OLDEST_VERSION} to {PROTOCOL_VERSION})")
        if version < OLDEST_VERSION:
            raise ProtocolMismatch(f"hello: unknown protocol version {version}; this daemon speaks {OLDEST_VERSION} to {PROTOCOL_VERSION}")
        session.version = min(version, PROTOCOL_VERSION)
        return {"version": session.version, "versions": [OLDEST_VERSION, PROTOCOL_VERSION], "daemon": f"insect-console {__version__}",
                "pid": os.getpid(), "host": os.uname().nodename, "where": self.engine.where, "features": self.features}

    def status(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        active = {name: encode_active(a) for name, a in self.engine.active_runs().items()}
        return {"pid": os.getpid(), "jobs": [s.to_wire() for s in self.engine.status()], "active": active}

    def run(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"run_id": self.engine.run_now(_text(args, "job")).run_id}

    def kill(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"killed": self.engine.kill(_text(args, "job"))}

    def reload(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.engine.request_reload()
        return {}

    def subscribe(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        session.subscribed = True
        return {}

    def unsubscribe(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        session.subscribed = False
        return {}

    # -- version 2: the config ------------------------------------------------------------------

    def config(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {**config_to_wire(self.engine.config), "where": self.engine.where, "log_dir": str(self.engine.log_dir)}

    def add_job(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.engine.add_job(_job(args))
        return {}

    def replace_job(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.engine.replace_job(_text(args, "name"), _job(args))
        return {}

    def remove_job(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.engine.remove_job(_text(args, "name"))
        return {}

    def set_enabled(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        enabled = args.get("enabled")
        if not isinstance(enabled, bool):
            raise BadRequest("set_enabled: 'enabled' must be true or false")
        self.engine.set_enabled(_text(args, "name"), enabled)
        return {}

    def preview(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        runs = self.engine.preview(_job(args), _int(args, "count", 5, 1, MAX_PREVIEW))
        return {"runs": [iso(when) for when in runs]}

    # -- version 2: history and output ------------------------------------------------------------

    def history_open(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"cursor": session.add_cursor(self.engine.history(_query(args)))}

    def history_page(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        found = session.cursor(args.get("cursor"))
        with found.lock:
            page: HistoryPage = found.cursor.next_page(_int(args, "count", 100, 1, MAX_PAGE))
        return {"records": page.records, "done": page.done, "skipped": page.skipped}

    def history_close(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        session.close_cursor(args.get("cursor"))
        return {}

    def run_record(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        slim = args.get("record")
        if not isinstance(slim, dict):
            raise BadRequest("run_record: 'record' must be a record from history_page")
        record = self.engine.run_record(slim)
        if record is not None and isinstance(record.get("output"), str) and len(record["output"]) > MAX_RECORD_OUTPUT:
            record = {**record, "output": record["output"][-MAX_RECORD_OUTPUT:]}
        return {"record": record}

    def recent_results(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        names = args.get("names")
        if not isinstance(names, list) or len(names) > 1000 or not all(isinstance(n, str) for n in names):
            raise BadRequest("recent_results: 'names' must be a list of job names")
        per_job = self.engine.recent_results(names, _int(args, "width", 24, 1, 200))
        return {"results": {name: [list(pair) for pair in results] for name, results in per_job.items()}}

    def _output_file(self, args: dict[str, Any]) -> str:
        """The path asked for, if it is a file under the station's log directory (nothing else is served)."""
        path = _text(args, "path")
        base = os.path.realpath(self.engine.log_dir)
        real = os.path.realpath(os.path.join(base, path))
        if os.path.commonpath([base, real]) != base or "\0" in path:
            raise BadRequest(f"{args.get('cmd')}: not a run output file of this station (only files under its log directory are served)")
        return real

    def output_tail(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        lines, more, size = self.engine.output_tail(self._output_file(args), _int(args, "max_lines", 1000, 1, 100_000))
        lines, clipped = _clip_lines(lines, MAX_TAIL_BYTES)
        return {"lines": lines, "more": more or clipped, "size": size}

    def output_since(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        lines, offset = read_since(self._output_file(args), _int(args, "offset", 0, 0, 2**62), MAX_SINCE_BYTES)
        return {"lines": lines, "offset": offset}

    def stats(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        if self._stats is None:
            self._stats = PsutilStats(self.engine.log_dir)
        return dict(self._stats().__dict__)
