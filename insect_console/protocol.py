"""The control protocol: its versions, its errors and the wire forms both sides share.

One JSON line each way, over the daemon's Unix socket or ssh's pipes (transport.py). Version 1
was what a console on the station needs beside the station's own files (status, run, kill,
reload, subscribe). Version 2 adds what a console on another machine needs instead of those
files (it reaches the daemon through `ssh … insect-console control-stdio`): the config and
changes to it, pages of history through a cursor kept per connection, one run's record, output
tails, previews, the station's stats. `hello` names the version and the commands, so a console
can tell an old station from a broken one (`greet`). The daemon's side, the command table, is
commands.py; the socket and the client are control.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from insect_console.config import Config, Settings
from insect_console.errors import AlreadyRunning, ConfigError, DaemonGone, UserError, ValidationError
from insect_console.history import HistoryQuery
from insect_console.jobs import Job, make_job
from insect_console.surface import ActiveRun
from insect_console.textfmt import parse_local

PROTOCOL_VERSION = 2
OLDEST_VERSION = 1
"""Version 1 had no `hello`: a client that says nothing speaks it, and all of it still works."""
NEEDED_BY_REMOTE = 2
"""What a console on another machine needs of a station's daemon."""


class BadRequest(UserError):
    """A request this daemon can't take: not JSON, an unknown command, a missing or bad argument."""


class ProtocolMismatch(UserError):
    """The daemon and its client don't speak a common protocol version."""


def iso(when: dt.datetime | None) -> str | None:
    """A time for the wire: ISO with its UTC offset, so a console in another time zone reads it right."""
    return when.astimezone().isoformat(timespec="milliseconds") if when is not None else None


def encode_active(run: ActiveRun) -> dict[str, Any]:
    return {"job_name": run.job_name, "run_id": run.run_id, "trigger": run.trigger, "start_time": iso(run.start_time),
            "output_file": run.output_file, "pid": run.pid}


def decode_active(data: Mapping[str, Any]) -> ActiveRun:
    return ActiveRun(str(data.get("job_name", "?")), str(data.get("run_id", "")), str(data.get("trigger", "")),
                     parse_local(data.get("start_time")), data.get("output_file"), data.get("pid"))


def config_to_wire(config: Config) -> dict[str, Any]:
    return {"settings": config.settings.to_dict(), "jobs": [job.to_dict() for job in config.jobs]}


def config_from_wire(data: Mapping[str, Any]) -> Config:
    """The daemon's config as a console shows it. Lenient: a newer daemon's setting this console
    does not know is left out, and a job of a schedule type it does not know is kept unchecked
    (the daemon validated it, and describes its schedule in the status)."""
    known = set(Settings.__dataclass_fields__)
    settings = Settings.from_dict({k: v for k, v in dict(data.get("settings") or {}).items() if k in known})
    jobs = []
    for raw in data.get("jobs") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue
        try:
            jobs.append(make_job(raw))
        except ValidationError:
            fields = {k: v for k, v in raw.items() if k in Job.__dataclass_fields__}
            jobs.append(Job(**{"command": "", "schedule_type": "?", "schedule_time": "?", **fields}))
    return Config(settings, tuple(jobs))


def query_to_wire(query: HistoryQuery) -> dict[str, Any]:
    return {"job": query.job, "status": query.status, "since": query.since.isoformat() if query.since else None,
            "until": query.until.isoformat() if query.until else None, "limit": query.limit}


def error_reply(rid: Any, error: BaseException | str) -> dict[str, Any]:
    if isinstance(error, str):
        return {"id": rid, "ok": False, "error": error, "kind": "BadRequest"}
    reply = {"id": rid, "ok": False, "error": str(error).strip("'\"") or type(error).__name__, "kind": type(error).__name__}
    if isinstance(error, ValidationError):
        reply.update(field=error.field, reason=error.reason)
    return reply


def error_from_reply(reply: Mapping[str, Any]) -> UserError:
    """The exception a refused request stands for, with the daemon's one-line message."""
    message = str(reply.get("error") or "the daemon refused the request")
    kind = reply.get("kind")
    if kind == "AlreadyRunning":
        return AlreadyRunning(message)
    if kind == "ValidationError" and reply.get("field"):
        return ValidationError(str(reply["field"]), str(reply.get("reason") or message))
    if kind == "ConfigError":
        return ConfigError(message)
    if kind == "BadRequest":
        return BadRequest(message)
    if kind == "ProtocolMismatch":
        return ProtocolMismatch(message)
    return UserError(message)


def request_too_long(limit: int) -> dict[str, Any]:
    """What a client gets before it is dropped for a line longer than `limit` bytes."""
    return error_reply(None, f"request too long: a request is one line of at most {limit // 1024} KiB; closing the connection")


def check_hello(result: Mapping[str, Any], needed: int = NEEDED_BY_REMOTE) -> dict[str, Any]:
    """The daemon's `hello` answer, or ProtocolMismatch when it can't serve this console."""
    version = result.get("version")
    if not isinstance(version, int) or version < needed:
        raise ProtocolMismatch(f"the station's insect-console ({result.get('daemon', '?')}) speaks control protocol {version}; "
                               f"this console needs {needed}: update insect-console on the station")
    return dict(result)


TOO_OLD = ("the station's insect-console is too old for a remote console ({why}; this console needs control protocol "
           f"{NEEDED_BY_REMOTE}): update insect-console on the station")


def old_station(said: str) -> ProtocolMismatch | None:
    """What a station too old for a remote console said (a refused `hello`, or no
    `control-stdio` command at all), as the message to show; else None."""
    if "unknown command 'hello'" in said:
        return ProtocolMismatch(TOO_OLD.format(why="its control protocol has no version"))
    if "invalid choice: 'control-stdio'" in said:
        return ProtocolMismatch(TOO_OLD.format(why="it has no control-stdio command"))
    return None


def explain(why: str) -> str:
    """A daemon's or transport's last words, as an operator elsewhere needs them."""
    if why == "permission denied":
        return "the station's daemon refused this user (permission denied): log in as the daemon's user, or root"
    return why


def greet(client: Any, wait: float | None = None) -> dict[str, Any]:
    """Say `hello` on a new connection; the daemon's answer, or ProtocolMismatch (one clear
    line) when it can't serve a remote console. DaemonGone passes through."""
    try:
        result = client.call("hello", wait=wait, version=PROTOCOL_VERSION)
    except (ProtocolMismatch, DaemonGone):
        raise
    except UserError as e:
        raise old_station(str(e)) or e
    return check_hello(result)
