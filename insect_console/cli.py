"""The `insect-console` command: the spec's CLI plus edit, history, convert and systemd.

Every user mistake ends in one line on stderr and a non-zero exit, never a traceback. This
module must not import textual: `list` and `scheduler --no-ui` stay light on a Pi.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from insect_console import __version__
from insect_console.errors import AlreadyRunning, UserError, ValidationError
from insect_console.jobs import SCHEDULE_TYPES

EXIT_FOR_STATUS = {"success": 0, "error": 1, "timeout": 124, "interrupted": 130}
MAX_HISTORY_LIMIT = 1_000_000
"""The most records `history --limit` prints."""
TIME_HELP = "3600 / 15m | 02:00 | sunday, 'sun 03:00' | '*/10 5-21 * * 1-5', @daily | sunset+00:30, dawn-15m | 5m (after boot) | none for --type after"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + error
        raise UserError(f"{message} (see {self.prog} --help)")


class _Unbuilt:
    """Stands in for the options of a command that is not the one being run: `list` does not
    pay for building the parsers of every other command (a third of its start)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_argument_group(self, *args: Any, **kwargs: Any) -> "_Unbuilt":
        return self


_VALUED = {"-c", "--config", "-l", "--log-level", "--host", "--remote-command"}
COMMANDS = ("scheduler", "run-job", "list", "add", "edit", "remove", "enable", "disable", "next", "cron", "history", "systemd",
            "control-stdio", "stations", "serve", "convert")
"""Every command word (a word that is none of them gets the whole parser, and its usage error)."""


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of `argv` (None: none, or --help asked for, so everything is built)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in ("-h", "--help"):
            return None
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with `only`, the options of that command alone are built."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file (.toml, or the spec's .json); default config/batch_config.toml")
    common.add_argument("-l", "--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, help="log level (default INFO)")

    parser = _Parser(prog="insect-console", description="Schedule, run and watch the batch jobs of an insect observation station.", parents=[common])
    parser.add_argument("--version", action="version", version=f"insect-console {__version__}")
    parser.add_argument("--no-ui", action="store_true", help="with no command: run the scheduler headless")
    parser.add_argument("--host", metavar="[USER@]STATION[:PORT]", help="open the console of a station elsewhere, over ssh (its -c CONFIG is the station's)")
    parser.add_argument("--remote-command", default=None, metavar="CMD", help="with --host: how insect-console is run on the station (default: insect-console)")
    parser.add_argument("--attach-only", action="store_true", help="open the console only on a running daemon; never start a scheduler here")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def cmd(name: str, help: str) -> Any:
        if only is not None and name != only:
            return _Unbuilt()
        return sub.add_parser(name, help=help, description=help, parents=[common])

    p = cmd("scheduler", "run the scheduler: the console, or headless with --no-ui (for systemd)")
    p.add_argument("--no-ui", action="store_true", help="no console: log to stderr (for systemd)")

    p = cmd("run-job", "run a job now and show its output (through the daemon when one runs)")
    p.add_argument("name")
    p.add_argument("--local", action="store_true", help="run it in this process even when a daemon runs")

    p = cmd("list", "list the jobs with their next and last runs")
    p.add_argument("--json", action="store_true", help="the spec's get_job_status structure as JSON")

    p = cmd("add", "add a job")
    p.add_argument("name")
    p.add_argument("job_command", metavar="COMMAND")
    p.add_argument("--type", required=True, choices=SCHEDULE_TYPES, dest="schedule_type")
    p.add_argument("--time", dest="schedule_time", help=TIME_HELP)
    p.add_argument("--window", help="interval and cron jobs: run only from START..END, e.g. 'sunset+30m..sunrise-1h', '21:00..05:00'")
    p.add_argument("--jitter", help="a random delay in [0, JITTER) on each due time, e.g. 5m")
    p.add_argument("--timeout", help="seconds (default from settings, 1800)")
    p.add_argument("--shell", action="store_true", help="run the command through /bin/sh (pipes, redirections)")
    p.add_argument("--cwd", help="working directory of the command")
    p.add_argument("--disabled", action="store_true", help="add it disabled")
    _policy_options(p)
    p.add_argument("--ping-url", metavar="URL", help="a Healthchecks check to ping at each run, https://hc-ping.com/<uuid>")
    p.add_argument("--ping-slug", metavar="SLUG", help="instead of --ping-url: the check's slug under settings.ping_base")

    p = cmd("edit", "change a job in place")
    p.add_argument("name")
    p.add_argument("--command", dest="job_command")
    p.add_argument("--type", choices=SCHEDULE_TYPES, dest="schedule_type")
    p.add_argument("--time", dest="schedule_time", help=TIME_HELP)
    p.add_argument("--window", help="START..END, or '' for none")
    p.add_argument("--jitter", help="e.g. 5m, or '' for none")
    p.add_argument("--timeout", help="seconds, or 'default'")
    p.add_argument("--shell", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--cwd")
    p.add_argument("--rename", metavar="NEW_NAME")
    _policy_options(p)
    p.add_argument("--ping-url", metavar="URL", help="a Healthchecks check to ping at each run; '' removes it")
    p.add_argument("--ping-slug", metavar="SLUG", help="the check's slug under settings.ping_base; '' removes it")

    p = cmd("remove", "remove a job")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="also drop the links of jobs that follow it (after = [...])")
    for name, help in (("enable", "enable a job"), ("disable", "disable a job")):
        cmd(name, help).add_argument("name")

    p = cmd("next", "print the next due times of a job, and what each comes from")
    p.add_argument("name")
    p.add_argument("-n", type=int, default=10, dest="count", help="how many (default 10)")

    p = cmd("cron", "print a crontab line that runs the job")
    p.add_argument("name")
    p.add_argument("--python", default=sys.executable, help="the python to run (default: this one)")

    p = cmd("history", "show past runs, newest first")
    p.add_argument("--job")
    p.add_argument("--status", choices=["success", "error", "timeout", "interrupted", "skipped"])
    p.add_argument("--since", help="YYYY-MM-DD")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="one JSON record per line")

    p = cmd("systemd", "print a systemd unit for the headless scheduler")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--user", help="the user to run as (default: you)")

    cmd("control-stdio", "bridge stdin/stdout to the daemon's control socket (what --host runs on the station over ssh)")

    p = cmd("stations", "an overview of many stations, each reached over ssh; enter opens one's console")
    p.add_argument("file", nargs="?", metavar="FILE", help="the stations file (default ~/.config/insect-console/stations.toml)")

    p = cmd("serve", "the console in a browser (textual-serve); each browser session is a console attached to the daemon")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS", help="address to listen on (default 127.0.0.1: reach it with ssh -L)")
    p.add_argument("--public", action="store_true", help="allow an address other than loopback (there is no authentication in front of it)")

    p = cmd("convert", "convert a spec-format JSON config to TOML")
    p.add_argument("source", metavar="OLD.json")
    p.add_argument("target", nargs="?", metavar="NEW.toml")
    return parser




def _policy_options(p: argparse.ArgumentParser) -> None:
    """The run-policy fields of a job (see policies.py); `none` clears a table or list on edit."""
    g = p.add_argument_group("run policies")
    g.add_argument("--catch-up", dest="catch_up", choices=["skip", "latest", "all"], help="missed due times after a power-off (default: latest for fixed times, skip for intervals)")
    g.add_argument("--catch-up-max-age", dest="catch_up_max_age", metavar="DURATION", help="older missed times are not run (default 24h)")
    g.add_argument("--require", action="append", metavar="KEY=VALUE", help="disk_free_mb=500, max_cpu_temp_c=75, min_battery_pct=30, command='test -e /dev/video0', disk_path=DIR (repeat; 'none' clears)")
    g.add_argument("--require-wait", dest="require_wait", metavar="DURATION", help="how long a due run waits for its conditions (default 30m)")
    g.add_argument("--retries", type=int, help="tries again on error or timeout (default 0)")
    g.add_argument("--retry-delay", dest="retry_delay", metavar="DURATION", help="before the first retry (default 1m)")
    g.add_argument("--retry-backoff", dest="retry_backoff", type=float, help="each retry waits this many times longer (default 2)")
    g.add_argument("--retry-max-delay", dest="retry_max_delay", metavar="DURATION", help="the longest wait between tries (default 30m)")
    g.add_argument("--after", action="append", metavar="JOB", help="also run when JOB finishes (repeat; 'none' clears)")
    g.add_argument("--after-status", dest="after_status", choices=["success", "failure", "any"], help="... with this status (default success)")
    g.add_argument("--group", help="at most one run of a group at a time ('' clears)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        only = _command_in(argv)
        args = build_parser(only if only in COMMANDS else None).parse_args(argv)
        return dispatch(args)
    except UserError as e:
        print(f"insect-console: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as e:  # the environment, not our code: a directory we can't write, a full disk
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"insect-console: {where}{e.strerror or e}", file=sys.stderr)
        return 1


def dispatch(args: argparse.Namespace) -> int:
    config = getattr(args, "config", "config/batch_config.toml")
    level = getattr(args, "log_level", "INFO")
    command = args.command or "scheduler"
    if getattr(args, "host", None) or getattr(args, "remote_command", None):
        if command != "scheduler" or args.no_ui or args.attach_only:
            raise UserError("--host opens a station's console: give it no command, and not --no-ui or --attach-only")
        return cmd_remote_console(args, config)
    if command == "scheduler":
        if args.no_ui and args.attach_only:
            raise UserError("--attach-only opens a console on a running daemon; --no-ui runs a scheduler: not both")
        return cmd_scheduler(config, level, headless=args.no_ui, attach_only=args.attach_only)
    from insect_console.logsetup import setup_logging

    setup_logging(getattr(args, "log_level", "WARNING"))
    handler = globals()["cmd_" + command.replace("-", "_")]
    return handler(args, config)


# -- commands ----------------------------------------------------------------


def cmd_scheduler(config: str, level: str, headless: bool, attach_only: bool = False) -> int:
    from insect_console.daemon import run_daemon
    from insect_console.logsetup import setup_logging
    from insect_console.engine import Engine

    if attach_only:
        from insect_console.app import run_attached
        from insect_console.remote import RemoteEngine

        engine = RemoteEngine(_store(config))
        return run_attached(engine, engine.log_dir, attach_only=True)
    engine = Engine(config)
    if not headless:
        from insect_console.app import run_console  # the Textual console, imported only here
        from insect_console.operations import Operations

        ops = Operations(engine)  # metrics and pings while this console schedules (not when it attaches to a daemon)
        engine.heartbeat = ops.beat
        try:
            return run_console(engine)
        finally:
            ops.close()
    setup_logging(level)
    return run_daemon(engine)


def cmd_remote_console(args, config: str) -> int:
    """`--host [user@]station[:port]`: the console of a station elsewhere, its daemon over ssh."""
    from insect_console.transport import DEFAULT_REMOTE_COMMAND, SshTarget

    if not args.host:
        raise UserError("--remote-command goes with --host")
    target = SshTarget.parse(args.host, config=config, remote_command=args.remote_command or DEFAULT_REMOTE_COMMAND)
    return _open_station(target)


def _open_station(target) -> int:
    from insect_console.app import run_attached
    from insect_console.sshengine import SshEngine

    engine = SshEngine(target, batch=False)  # the first connection may ask for a passphrase, before the console takes the screen
    return run_attached(engine, local_state_dir())


def local_state_dir() -> Path:
    """Where a console of a station elsewhere keeps its own log: $XDG_STATE_HOME/insect-console."""
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "insect-console"


def cmd_stations(args, config: str) -> int:
    """`stations [FILE]`: the overview of many stations; enter opens one's console."""
    from insect_console.stations import default_stations_file, load_stations

    path = Path(args.file).expanduser() if args.file else default_stations_file()
    stations = load_stations(path)
    from insect_console.app import run_stations  # the Textual console, imported only here

    return run_stations(stations, str(path), local_state_dir())


def cmd_serve(args, config: str) -> int:
    """`serve`: the console in a browser; every session attached to the daemon."""
    from insect_console.serve import serve

    return serve(config, args.port, args.bind, args.public)


def cmd_control_stdio(args, config: str) -> int:
    from insect_console.bridge import run_bridge
    from insect_console.control import socket_path

    store = _store(config)
    if not store.path.exists():
        raise UserError(f"{store.display_path}: no such config file (give the station's config with -c)")
    return run_bridge(socket_path(store.runtime_dir), store.display_path)


def _store(config: str):
    from insect_console.config import ConfigStore

    return ConfigStore(config)


def cmd_run_job(args, config: str) -> int:
    from insect_console.engine import Engine

    engine = Engine(config)
    job = engine.config.job(args.name)
    engine.store.check_log_dir(engine.settings)
    engine.recover_interrupted()  # a run-job killed with SIGKILL earlier gets its record (cron use has no daemon)
    if not args.local:
        from insect_console.control import connect_to_daemon

        events: "queue.Queue" = queue.Queue()
        client = connect_to_daemon(
            engine.store.runtime_dir,
            on_event=lambda e: events.put(e) if getattr(e, "job_name", None) == job.name else None,
            on_close=lambda: events.put(None),
        )
        if client is not None:
            try:
                return _run_via_daemon(client, job.name, events)
            finally:
                client.close()

    def show(stream: str, lines: list[str]) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write("\n".join(lines) + "\n")
        out.flush()

    from insect_console.runslots import RunSlot
    from insect_console.records import new_run_id

    slot = RunSlot(job.name, new_run_id(), "manual")

    def interrupted(signum, _frame) -> None:
        # end the job's whole tree; the run is still recorded, as interrupted
        if slot.run is not None:
            slot.run.kill("interrupted", f"run-job was stopped by {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    ops = None
    if job.ping_url or job.ping_slug:
        from insect_console.operations import Operations

        ops = Operations(engine, scheduler=False)  # Healthchecks pings for this run (cron use)
    try:
        record = engine.execute(job, "manual", on_output=show, slot=slot)
    except AlreadyRunning as e:
        raise UserError(str(e), exit_code=75) from None
    finally:
        if ops is not None:
            ops.close()
    detail = f" ({record['error']})" if record.get("error") else ""
    print(f"{job.name}: {record['status']} in {record.get('duration_s') or 0:.1f} s{detail}", file=sys.stderr)
    return EXIT_FOR_STATUS.get(record["status"], 1)


def _run_via_daemon(client, name: str, events: "queue.Queue") -> int:
    """Ask the daemon to run `name` (so its overlap rule holds) and stream the run's output."""
    from insect_console.errors import AlreadyRunning
    from insect_console.events import OutputLines, RunFinished, RunSkipped

    client.call("subscribe")
    try:
        run_id = client.call("run", job=name)["run_id"]
    except AlreadyRunning as e:
        raise UserError(str(e), exit_code=75) from None

    def interrupted(signum, _frame) -> None:
        # the run belongs to the daemon: ask it to end the run, then report how it ended
        try:
            client.call("kill", job=name)
        except UserError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    while True:
        event = events.get()
        if event is None:
            print(f"{name}: the daemon went away during the run; see `insect-console history`", file=sys.stderr)
            return 1
        if getattr(event, "run_id", None) != run_id:
            continue
        if isinstance(event, RunSkipped):
            raise UserError(event.reason, exit_code=75)
        if isinstance(event, OutputLines):
            out = sys.stdout if event.stream == "stdout" else sys.stderr
            out.write("\n".join(event.lines) + "\n")
            out.flush()
        elif isinstance(event, RunFinished):
            record = event.record
            detail = f" ({record['error']})" if record.get("error") else ""
            print(f"{name}: {record['status']} in {record.get('duration_s') or 0:.1f} s (run by the daemon){detail}", file=sys.stderr)
            return EXIT_FOR_STATUS.get(record["status"], 1)


def cmd_list(args, config: str) -> int:
    from insect_console.state import StateStore
    from insect_console.surface import status_from_files
    from insect_console.textfmt import iso_local, short_time

    store = _store(config)
    conf = store.load(create=True)
    state = StateStore(store.state_path, store.runtime_dir / "state.lock").read()
    legacy = store.legacy_state()
    status = status_from_files(store, conf, state, fallback=legacy)
    notes = _sun_notes(conf, state)
    if args.json:
        out = []
        for s in status:  # the spec's get_job_status fields; run state as the state file has it
            js = state["jobs"].get(s.name) or legacy.get(s.name, {})
            out.append({
                "name": s.name, "enabled": s.enabled, "schedule_type": s.schedule_type, "schedule_time": s.schedule_time,
                "last_run": js.get("last_run"), "last_status": s.last_status, "error_count": s.error_count, "next_run": iso_local(s.next_run),
                **schedule_fields(conf.job(s.name)), "notes": notes.get(s.name, []),
                **conf.job(s.name).policy.to_dict(), "waiting": s.waiting,
            })
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    rows = [("NAME", "ON", "SCHEDULE", "NEXT RUN", "LAST RUN", "STATUS", "FAILS")]
    for s in status:
        status_word = "running" if s.running else "waiting" if s.waiting else (s.last_status or "-")
        rows.append((s.name, "yes" if s.enabled else "no", s.schedule, short_time(s.next_run), short_time(s.last_run), status_word, str(s.error_count)))
    _print_table(rows)
    for name, lines in notes.items():
        for line in lines:
            print(f"{name}: {line}")
    for s in status:
        if s.waiting:
            print(f"{s.name}: waiting: {s.waiting}" + (f" (since {s.waiting_since:%H:%M:%S})" if s.waiting_since else ""))
    return 0


def _sun_notes(conf, state) -> dict[str, list[str]]:
    """Why a job that follows the sun skips days before its next run ("no sunset from ...")."""
    jobs = [j for j in conf.jobs if j.enabled and j.when.needs_place]
    if not jobs:
        return {}
    from insect_console.scheduling import preview
    from insect_console.station import site_for

    site = site_for(conf.settings)
    return {j.name: p.skipped for j in jobs if (p := preview(j, count=1, site=site)).skipped}


def schedule_fields(job) -> dict[str, Any]:
    """A job's schedule for `list --json`: in words, and the type's own fields (keyed by type)."""
    when = job.when
    own: dict[str, Any] = {
        "interval": lambda: {"seconds": when.seconds},
        "daily": lambda: {"at": when.at},
        "weekly": lambda: {"weekday": when.weekday, "at": when.at},
        "cron": lambda: {"expression": job.schedule_time, "fields": when.cron},
        "sun": lambda: {"event": when.sun.event, "offset_s": when.sun.offset},
        "boot": lambda: {"delay_s": when.seconds},
        "after": lambda: {"jobs": list(job.policy.after), "status": job.policy.after_status},
    }[when.kind]()
    window = None
    if when.window is not None:
        start, _, end = (job.window or "").partition("..")
        window = {"start": start, "end": end}
    return {"schedule": when.describe(), when.kind: own, "window": window, "jitter_s": when.jitter}


def _job_from_args(args, base: dict[str, Any]) -> dict[str, Any]:
    data = dict(base)
    for key in ("schedule_type", "schedule_time", "cwd", "ping_url", "ping_slug"):
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    for key in ("window", "jitter"):
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value or None
    if data.get("schedule_type") == "after" and getattr(args, "schedule_time", None) is None:
        data["schedule_time"] = ""
    if getattr(args, "ping_url", None):
        data.pop("ping_slug", None)  # one or the other
    if getattr(args, "ping_slug", None):
        data.pop("ping_url", None)
    if getattr(args, "job_command", None) is not None:
        data["command"] = args.job_command
    if getattr(args, "timeout", None) is not None:
        data["timeout"] = None if args.timeout in ("default", "") else args.timeout
    for key in ("catch_up", "catch_up_max_age", "require_wait", "retries", "retry_delay", "retry_backoff", "retry_max_delay", "after_status"):
        value = getattr(args, key, None)
        if value is not None:
            data[key] = int(value) if key == "retry_backoff" and float(value).is_integer() else value
    if getattr(args, "require", None):
        from insect_console.policies import require_from_items

        data["require"] = None if args.require == ["none"] else require_from_items(args.require)
    if getattr(args, "after", None):
        data["after"] = None if args.after == ["none"] else args.after
    if getattr(args, "group", None) is not None:
        data["group"] = args.group or None
    return data


def cmd_add(args, config: str) -> int:
    from insect_console.jobs import make_job

    if args.schedule_time is None and args.schedule_type != "after":
        raise UserError("the following arguments are required: --time (see insect-console add --help)")
    data = _job_from_args(args, {"name": args.name, "shell": args.shell, "enabled": not args.disabled})
    job = make_job(data)
    _store(config).add_job(job)
    print(f"added {job.name}: {job.describe()}")
    return 0


def cmd_edit(args, config: str) -> int:
    from insect_console.jobs import make_job

    store = _store(config)

    def change(current):
        job = current.job(args.name)
        data = job.to_dict()
        if args.schedule_type and args.schedule_type != "after" and not args.schedule_time and args.schedule_type != job.schedule_type:
            raise ValidationError("schedule_time", f"give --time with --type {args.schedule_type}")
        data = _job_from_args(args, data)
        if data.get("window") and data["schedule_type"] not in ("interval", "cron") and args.window is None:
            data["window"] = None  # the window belonged to the old schedule type
        if args.shell is not None:
            data["shell"] = args.shell
        if args.rename:
            data["name"] = args.rename
        return current.with_job(make_job(data), replace=args.name)

    new = store.update(change)
    job = new.job(args.rename or args.name)
    print(f"changed {job.name}: {job.describe()}, command {job.command!r}")
    return 0


def cmd_remove(args, config: str) -> int:
    _store(config).remove_job(args.name, force=args.force)
    print(f"removed {args.name}")
    return 0


def cmd_enable(args, config: str) -> int:
    _store(config).set_enabled(args.name, True)
    print(f"enabled {args.name}")
    return 0


def cmd_disable(args, config: str) -> int:
    _store(config).set_enabled(args.name, False)
    print(f"disabled {args.name}")
    return 0


def cmd_next(args, config: str) -> int:
    from insect_console.scheduling import preview
    from insect_console.state import StateStore, last_runs, ran_this_boot
    from insect_console.station import read_boot, site_for
    from insect_console.clock import SystemClock

    if args.count < 1:
        raise UserError("-n: must be 1 or more")
    store = _store(config)
    conf = store.load()
    job = conf.job(args.name)
    state = StateStore(store.state_path, store.runtime_dir / "state.lock").read()
    site = site_for(conf.settings, read_boot(SystemClock()))
    p = preview(job.replace(enabled=True), anchors=last_runs(state, store.legacy_state()), count=args.count, site=site,
                done_this_boot=ran_this_boot(state, site.boot.id))
    zone = getattr(site.zone, "key", None) or str(site.zone)
    where = f", {site.place}" if job.when.needs_place else ""
    print(f"{job.name}: {job.when.describe()} ({zone}{where})" + ("" if job.enabled else " (disabled: the times it would have)"))
    for when, note in zip(p.times, p.notes):
        local = when.astimezone(site.zone)
        print(f"  {local:%a %Y-%m-%d %H:%M:%S %Z}" + (f"  {note}" if note else ""))
    for line in p.skipped:
        print(f"  {line}")
    if not p.times:
        print("  no due time" + (" in this boot: it already ran" if job.when.kind == "boot" else " in the next 400 days"))
    return 0


def cmd_cron(args, config: str) -> int:
    from insect_console.integrations import cron_line

    store = _store(config)
    job = store.load().job(args.name)
    python = str(Path(args.python).absolute()) if "/" in args.python else args.python
    print(cron_line(job, store.path, store.base_dir, python, store.load().settings))
    return 0


def cmd_systemd(args, config: str) -> int:
    from insect_console.integrations import systemd_unit

    store = _store(config)
    settings = store.load().settings
    print(systemd_unit(store.path, store.base_dir, str(Path(args.python).absolute()), settings, args.user), end="")
    return 0


def cmd_history(args, config: str) -> int:
    from insect_console.history import HistoryQuery, HistoryReader
    from insect_console.textfmt import parse_local, printable, short_time

    store = _store(config)
    settings = store.load().settings
    since = None
    if args.since:
        try:
            since = dt.date.fromisoformat(args.since)
        except ValueError:
            raise UserError(f"--since: {args.since!r} is not a date; use YYYY-MM-DD") from None
    if args.limit < 1:
        raise UserError("--limit: must be 1 or more")
    if args.limit > MAX_HISTORY_LIMIT:
        raise UserError(f"--limit: {args.limit} is too large; at most {MAX_HISTORY_LIMIT} (or filter with --job, --status, --since)")
    reader = HistoryReader(store.resolve(settings.log_dir))
    query = HistoryQuery(job=args.job, status=args.status, since=since, limit=args.limit)
    rows = [("START", "JOB", "STATUS", "TOOK", "TRIGGER", "ERROR")]
    for record in reader.records(query):
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
            continue
        took = record.get("duration_s")
        rows.append(
            (
                short_time(parse_local(record.get("start_time"))),
                printable(str(record.get("job_name", "?"))),
                printable(str(record.get("status", "?"))),
                f"{took:.1f}s" if isinstance(took, (int, float)) else "-",
                printable(str(record.get("trigger") or "-")),
                printable((record.get("error") or "").splitlines()[0])[:60] if record.get("error") else "",
            )
        )
    if not args.json:
        if len(rows) == 1:
            print("no runs recorded" + (" that match" if args.job or args.status or since else ""))
        else:
            _print_table(rows)
    if reader.skipped:
        print(f"({reader.skipped} malformed history line(s) skipped)", file=sys.stderr)
    return 0


def cmd_convert(args, config: str) -> int:
    from insect_console.config import ConfigStore, convert
    from insect_console.state import StateStore

    source = ConfigStore(args.source)
    if not source.is_json:
        raise UserError(f"{args.source}: convert reads a .json config")
    target = ConfigStore(args.target or str(Path(args.source).with_suffix(".toml")))
    if target.is_json:
        raise UserError(f"{target.display_path}: convert writes a .toml config")
    result = convert(source, target)
    legacy = source.legacy_state()
    if legacy:
        StateStore(target.state_path, target.runtime_dir / "state.lock").update(
            lambda s: [s["jobs"].setdefault(n, dict(v)) for n, v in legacy.items()]
        )
    print(f"wrote {target.display_path}: {len(result.jobs)} jobs (run state in {target.state_path.name})")
    return 0


# -- output helpers --------------------------------------------------------------


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
