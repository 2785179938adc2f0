"""The Textual console: a thin App that dispatches and navigates. Screens hold the UI, the
engine (through `surface.EngineView`) the logic.

Engine events reach the UI as messages posted from the engine's threads by `EngineBridge`; the
App turns them into toasts and notices and re-publishes them on signals the screens subscribe
to. Screens ask for a job command or another screen with a `Command` message; the App runs the
command on a named thread worker (an attached console's calls go over a socket and may be slow)
and decides what opens next. Blocking work only ever runs on workers, which post messages.

`create_app(engine)` builds the app (tests use it too); `run_console(engine)` is what the CLI
calls: it starts the engine, runs the app and stops the engine on the way out.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import threading
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.signal import Signal
from textual.widget import AwaitMount
from textual.worker import Worker, WorkerState

from insect_console.clock import Clock, SystemClock
from insect_console.errors import AlreadyRunning, SchedulerRunning, UserError
from insect_console.events import ClockJumped, ConfigReloaded, DaemonLost, Notification, OutputLines, RunFinished, RunSkipped, RunStarted
from insect_console.runoutput import OutputHub
from insect_console.screens.base import Command
from insect_console.screens.dialogs import ConfirmScreen, QuitScreen, WaitingScreen
from insect_console.screens.form import JobFormScreen
from insect_console.screens.help import HelpScreen
from insect_console.screens.history import HistoryScreen, RunDetailScreen
from insect_console.screens.jobs import JobsScreen
from insect_console.screens.output import OutputScreen
from insect_console.screens.palette import JobCommands
from insect_console.screens.stations import StationsScreen
from insect_console.sshengine import SshEngine
from insect_console.stations import Station
from insect_console.surface import EngineView
from insect_console.sysstats import StatsProvider, SystemStats
from insect_console.textfmt import terminal_safe
from insect_console.widgets import cells

STATS_INTERVAL = 3.0
EARLY_LIMIT = 1000
"""Events kept while the app is not yet running (older ones are dropped)."""


# -- messages ------------------------------------------------------------------------------


class EngineEvent(Message):
    """An engine event (RunStarted, RunFinished, RunSkipped, Notification, ConfigReloaded, ...)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class OutputAvailable(Message):
    """New output lines of `job_name` are waiting in the bridge's `OutputHub`."""

    def __init__(self, job_name: str) -> None:
        super().__init__()
        self.job_name = job_name

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OutputAvailable) and message.job_name == self.job_name


class StatsUpdated(Message):
    def __init__(self, stats: SystemStats) -> None:
        super().__init__()
        self.stats = stats


class Notice(Message):
    """What a job command's worker has to tell the operator (a toast)."""

    def __init__(self, text: str, severity: str = "information", title: str = "") -> None:
        super().__init__()
        self.text = text
        self.severity = severity
        self.title = title


class EngineReady(Message):
    """This console's own scheduler started (after the daemon went away)."""

    def __init__(self, engine: EngineView) -> None:
        super().__init__()
        self.engine = engine


class ExitRequested(Message):
    """Posted from a signal's thread (SIGTERM, SIGHUP): quit now, without asking."""


class StationOpened(Message):
    """A station of the overview answered: show its console."""

    def __init__(self, engine: EngineView) -> None:
        super().__init__()
        self.engine = engine


# -- from engine threads to the app ------------------------------------------------------------


class EngineBridge:
    """Subscribes to the engine at once (so nothing is missed before the app runs) and posts to the app.

    The listener never touches a widget: it posts a message (`post_message` is thread-safe),
    and for output it only appends to a bounded per-job buffer and posts one `OutputAvailable`
    until the UI has drained it. However fast a job prints, at most one output message per job
    is in flight, and memory stays at the hub's capacity.
    """

    def __init__(self, engine: EngineView) -> None:
        self.output = OutputHub()
        self._lock = threading.Lock()
        self._target: App | None = None
        self._closed = False
        self._early: deque[Message] = deque(maxlen=EARLY_LIMIT)
        self._unsubscribe = engine.subscribe(self._on_event)

    def attach(self, app: App) -> None:
        """Start delivering to `app` (call on the app's thread once it runs)."""
        with self._lock:
            self._target = app
            early, self._early = list(self._early), deque(maxlen=EARLY_LIMIT)
            for message in early:
                app.post_message(message)

    def close(self) -> None:
        self._unsubscribe()
        with self._lock:
            self._closed = True
            self._target = None

    def _on_event(self, event: Any) -> None:
        if isinstance(event, OutputLines):
            if self.output.add(event):
                self._post(OutputAvailable(event.job_name))
            return
        if isinstance(event, RunStarted):
            self.output.started(event)
        elif isinstance(event, RunFinished):
            self.output.finished(event)
        self._post(EngineEvent(event))

    def _post(self, message: Message) -> None:
        with self._lock:
            if self._closed:
                return
            if self._target is None:
                self._early.append(message)
                return
            self._target.post_message(message)


# -- the app ----------------------------------------------------------------------------------


class InsectConsole(App[str]):
    """Exits with "stop" when the operator chose to stop runs in progress, else None."""

    CSS_PATH = "console.tcss"
    TITLE = "insect-console"
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit (asks when runs are in progress)"),
        Binding("question_mark", "help", "Help", tooltip="All keys"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]
    COMMANDS = App.COMMANDS | {JobCommands}

    def __init__(self, engine: EngineView | None, *, clock: Clock | None = None, stats_provider: StatsProvider | None = None,
                 stats_interval: float = STATS_INTERVAL, attach_only: bool = False, stations: Sequence[Station] | None = None,
                 stations_source: str = "", ssh: Sequence[str] | None = None) -> None:
        super().__init__()
        cells.set_monochrome(self.no_color)
        self.engine = engine
        """None only on the stations overview, while no station is open."""
        self.attach_only = attach_only
        """Never schedule from this console (a browser session of `serve`): a lost daemon is reconnected to, never replaced."""
        self.lost_reason = ""
        self.clock = clock or (engine.clock if engine is not None else SystemClock())
        self.bridge: EngineBridge | None = EngineBridge(engine) if engine is not None else None
        self._fixed_stats = stats_provider
        self.stats_provider: StatsProvider | None = stats_provider or (engine.stats_provider() if engine is not None else None)
        self.ssh = ssh
        """The ssh command for the stations (None: $INSECT_CONSOLE_SSH, else ssh)."""
        self.stations_screen = StationsScreen(stations, stations_source, ssh) if stations is not None else None
        self.stats_interval = stats_interval
        self.last_stats: SystemStats | None = None
        self.last_notice: tuple[str, str] | None = None
        """(style, text) of the latest notification, shown on the status line."""
        self.engine_events: Signal[object] = Signal(self, "engine-events")
        self.output_events: Signal[str] = Signal(self, "output-events")
        self.status_changed: Signal[None] = Signal(self, "status-changed")
        self.jobs_screen = JobsScreen()
        self.operations: Any = None
        """Metrics and pings of a scheduler this console started itself (after its daemon left)."""
        self.waiting_to_quit = False
        self.quitting = False
        """Set once the app is on its way out: no screen is opened any more."""

    @property
    def output(self) -> OutputHub:
        assert self.bridge is not None
        return self.bridge.output

    @property
    def attached(self) -> bool:
        return self.engine is None or self.engine.attached

    def exit(self, *args, **kwargs) -> None:
        self.quitting = True
        super().exit(*args, **kwargs)

    def push_screen(self, screen, *args, **kwargs):
        if self.quitting:  # keys typed ahead of a quit must not open screens on the way out
            return AwaitMount(self.screen, [])
        return super().push_screen(screen, *args, **kwargs)

    def get_default_screen(self) -> Screen:
        return self.stations_screen or self.jobs_screen

    def on_mount(self) -> None:
        if self.bridge is not None:
            self.bridge.attach(self)
        if self.stats_provider is not None:
            self.last_stats = self.stats_provider()
        self.set_interval(self.stats_interval, self.collect_stats)

    def on_unmount(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
        if self.operations is not None:
            self.operations.close()

    # -- engine events ----------------------------------------------------------------

    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None, markup: bool = False) -> None:
        """A toast; its text may come from a job (an error message), so it is shown as plain
        text with control characters escaped, never as markup."""
        super().notify(terminal_safe(message), title=terminal_safe(title), severity=severity, timeout=timeout, markup=markup)

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        now = self.clock.now().strftime("%H:%M")
        if isinstance(event, Notification):
            failing = event.kind == "failing"
            self.notify(event.message, title="Failing" if failing else "Recovered", severity="error" if failing else "information", timeout=10)
            short = f"{event.job_name} failing: {event.failures}× {event.status}" if failing else f"{event.job_name} recovered"
            self.set_notice("bold red" if failing else "green", f"{'✗' if failing else '✓'} {now} {short}")
        elif isinstance(event, ConfigReloaded) and event.error:
            self.notify(event.error, title="Config not reloaded (old jobs kept)", severity="error", timeout=15)
            self.set_notice("bold red", f"✗ {now} config not reloaded: old jobs kept")
        elif isinstance(event, RunSkipped):
            self.notify(f"{event.job_name} not started: {event.reason}", severity="warning")
        elif isinstance(event, ClockJumped):
            self.notify(f"The wall clock jumped {event.seconds:+.0f} s; next runs recomputed.", severity="warning")
        elif isinstance(event, DaemonLost):
            reason = event.reason.rstrip(".") + "."
            self.lost_reason = reason if reason.startswith("ssh") else reason[:1].upper() + reason[1:]
            self.daemon_lost()
        self.engine_events.publish(event)

    def on_output_available(self, message: OutputAvailable) -> None:
        self.output_events.publish(message.job_name)

    def set_notice(self, style: str, text: str) -> None:
        self.last_notice = (style, text)
        self.status_changed.publish(None)

    # -- attached to a daemon ---------------------------------------------------------------

    def daemon_lost(self) -> None:
        """The daemon we were attached to went away: say so, and offer to schedule from here,
        or, for a station elsewhere or a console that must never schedule, to reconnect."""
        engine = self.engine
        pid = engine.daemon_pid
        if engine.remote_host is not None or self.attach_only:
            where = engine.remote_host or f"the daemon (pid {pid})"
            self.set_notice("bold red", f"✗ connection to {where} lost")
            detail = "Nothing on the station stops: its daemon goes on scheduling." if engine.remote_host else "Nothing schedules the jobs now, unless the daemon is started again."
            self.push_screen(
                ConfirmScreen(f"The connection to {where} was lost.", f"{self.lost_reason} {detail} Reconnect?", "Reconnect"),
                lambda yes: self.start_own_engine(reconnect=True) if yes else None,
            )
            return
        self.set_notice("bold red", f"✗ daemon pid {pid} went away: nothing is scheduling")
        self.push_screen(
            ConfirmScreen(
                f"The daemon (pid {pid}) has stopped.",
                "Nothing schedules the jobs now. Start this console's own scheduler? (It stops when the console closes.)",
                "Start scheduler",
            ),
            lambda yes: self.start_own_engine() if yes else None,
        )

    @work(thread=True, group="engine", exclusive=True, exit_on_error=False)
    def start_own_engine(self, reconnect: bool = False) -> None:
        engine = self.engine.reconnect() if reconnect else self.engine.own_scheduler()
        ops = None
        if not reconnect:
            from insect_console.operations import Operations

            ops = Operations(engine)  # metrics and pings while this console schedules
            engine.heartbeat = ops.beat
        try:
            engine.start()
        except UserError as e:  # SchedulerRunning, or a station still out of reach
            if ops is not None:
                ops.close()
            self.post_message(Notice(str(e), "error", "Not reconnected" if reconnect else "Not started"))
            if reconnect:
                self.call_from_thread(self.daemon_lost)
            return
        if ops is not None:
            self.operations = ops
        self.post_message(EngineReady(engine))

    def on_engine_ready(self, message: EngineReady) -> None:
        """Switch the console to its new engine: its own scheduler, or a new connection."""
        if self.engine is None or self.bridge is None:  # the station was left meanwhile
            message.engine.stop(0)
            return
        old, self.engine = self.engine, message.engine
        self.bridge.close()
        self.bridge = EngineBridge(self.engine)
        self.bridge.attach(self)
        self.stats_provider = self._fixed_stats or self.engine.stats_provider()
        old.stop(0)
        if self.engine.attached:
            where = self.engine.remote_host or f"the daemon (pid {self.engine.daemon_pid})"
            self.set_notice("green", f"✓ reconnected to {where}")
            self.notify(f"Reconnected to {where}.", title="Reconnected")
        else:
            self.set_notice("green", "✓ this console now runs the scheduler")
            self.notify("This console now runs the scheduler; it stops when the console closes.", title="Scheduler started")
        self.status_changed.publish(None)

    # -- navigation and job commands (screens ask with a Command) ---------------------------------

    @on(Command)
    def run_command(self, message: Command) -> None:
        message.stop()
        action, name = message.action, message.job
        if action == "open-station" and message.station is not None:
            self.open_station(message.station)
            return
        if action == "back":
            if self.stations_screen is not None and self.engine is not None and self.screen is self.jobs_screen:
                self.run_worker(self.leave_station(), group="station", exclusive=True)
            return
        if self.engine is None:
            return
        if action == "add":
            self.push_screen(JobFormScreen(None), self._form_saved)
        elif action == "run-detail" and message.record is not None:
            self.push_screen(RunDetailScreen(message.record))
        elif action == "history":
            self.push_screen(HistoryScreen(name if name in self.engine.config.names() else None))
        elif action == "kill":
            self.kill_job(name)
        elif self.job_exists(name):
            if action == "run":
                self._call(f"run {name}", self.engine.run_now, name)
            elif action == "toggle":
                enabled = not self.engine.config.job(name).enabled
                self._call(f"{name} {'enabled' if enabled else 'disabled'}.", self.engine.set_enabled, name, enabled)
            elif action == "delete":
                self.delete_job(name)
            elif action == "output":
                self.push_screen(OutputScreen(name))
            elif action == "edit":
                self.push_screen(JobFormScreen(self.engine.config.job(name)), self._form_saved)

    def job_exists(self, name: str | None) -> bool:
        if name is None:
            self.notify("No job selected.", severity="warning")
            return False
        if name not in self.engine.config.names():
            self.notify(f"There is no job named {name!r} any more.", severity="warning")
            return False
        return True

    def _form_saved(self, name: str | None) -> None:
        if name is not None:
            self.jobs_screen.show_job(name)

    def kill_job(self, name: str | None) -> None:
        if name is None:
            self.notify("No job selected.", severity="warning")
            return
        active = self.engine.active_runs().get(name)
        if active is None:
            self.notify(f"{name} is not running in this console.", severity="warning")
            return
        tree = f"Its whole process tree (pid {active.pid})" if active.pid else "Its whole process tree"
        self.push_screen(
            ConfirmScreen(f"Kill the running {name}?", f"{tree} is ended; the run is recorded as error.", "Kill"),
            lambda yes: self._call(f"kill {name}", self.engine.kill, name) if yes else None,
        )

    def delete_job(self, name: str) -> None:
        running = name in self.engine.active_runs()
        detail = "Its run history is kept." + (" The run in progress goes on to its end." if running else "")
        self.push_screen(
            ConfirmScreen(f"Delete the job {name}?", detail, "Delete"),
            lambda yes: self._call(f"{name} deleted.", self.engine.remove_job, name) if yes else None,
        )

    @work(thread=True, group="commands", exit_on_error=False)
    def _call(self, what: str, call: Callable[..., Any], *args: Any) -> None:
        """One engine call on a worker; a refusal becomes a toast. `what` is the toast of success
        (a command word alone, like "run x", says nothing: the table shows it)."""
        try:
            result = call(*args)
        except AlreadyRunning as e:
            self.post_message(Notice(str(e), "warning"))
            return
        except (UserError, OSError) as e:
            self.post_message(Notice(str(e), "error"))
            return
        if what.startswith("kill ") and result is False:
            self.post_message(Notice(f"{args[0]} had already finished."))
        elif what.endswith("."):
            self.post_message(Notice(what))

    # -- the stations overview ----------------------------------------------------------

    @work(thread=True, group="station", exclusive=True, exit_on_error=False)
    def open_station(self, station: Station) -> None:
        """Connect to a station of the overview (on a worker: ssh takes its time)."""
        engine = SshEngine(station.target(), ssh=self.ssh)
        try:
            engine.start()
        except UserError as e:
            self.post_message(Notice(str(e), "error", f"Not connected to {station.name}"))
            return
        self.post_message(StationOpened(engine))

    def on_station_opened(self, message: StationOpened) -> None:
        if self.quitting or self.engine is not None:
            threading.Thread(target=message.engine.stop, daemon=True).start()
            return
        self.engine = engine = message.engine
        self.bridge = EngineBridge(engine)
        self.bridge.attach(self)
        self.stats_provider = self._fixed_stats or engine.stats_provider()
        self.last_stats = self.stats_provider()
        self.last_notice = None
        self.jobs_screen = JobsScreen()
        self.push_screen(self.jobs_screen)

    async def leave_station(self) -> None:
        """Back from a station's console to the overview; the connection ends (the station goes on)."""
        engine = self.engine
        await self.pop_screen()
        if self.bridge is not None:
            self.bridge.close()
        self.engine, self.bridge, self.last_notice = None, None, None
        self.stats_provider, self.last_stats = self._fixed_stats, None
        if engine is not None:
            threading.Thread(target=engine.stop, name="leave-station", daemon=True).start()  # ends ssh: not on the UI thread

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, title=message.title, severity=message.severity, timeout=10 if message.severity == "error" else None)

    # -- system stats --------------------------------------------------------------------

    @work(thread=True, group="stats", exclusive=True, exit_on_error=False)
    def collect_stats(self) -> None:
        provider = self.stats_provider
        if provider is not None:
            self.post_message(StatsUpdated(provider()))

    def on_stats_updated(self, message: StatsUpdated) -> None:
        self.last_stats = message.stats
        self.status_changed.publish(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.name}: {event.worker.error}", title="Something failed", severity="error", timeout=10)

    # -- keys ----------------------------------------------------------------------------

    HELP_SCREENS = [
        ("Jobs", JobsScreen),
        ("Live output", OutputScreen),
        ("History", HistoryScreen),
        ("One run", RunDetailScreen),
        ("Add / edit form", JobFormScreen),
    ]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            stations = [("Stations", StationsScreen)] if self.stations_screen is not None else []
            self.push_screen(HelpScreen([*stations, *self.HELP_SCREENS, ("Everywhere", type(self))]))

    async def action_quit(self) -> None:
        """Quit; with runs in progress, ask: wait for them, stop them, or cancel.

        Attached to a daemon, the runs are the daemon's: the console just detaches.
        """
        active = {} if self.attached else self.engine.active_runs()
        if not active:
            self.exit()
            return
        if self.waiting_to_quit or isinstance(self.screen, QuitScreen):
            return
        self.push_screen(QuitScreen(sorted(active)), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if choice == "stop":
            self.exit("stop")
        elif choice == "wait":
            self.waiting_to_quit = True
            self.engine.request_stop()  # no new runs start
            self.push_screen(WaitingScreen(), self._quit_chosen)
            self.set_interval(0.25, self._exit_when_idle)

    def _exit_when_idle(self) -> None:
        if not self.engine.active_runs():
            self.exit()

    def on_exit_requested(self, _message: ExitRequested) -> None:
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers every key of the current screen, plus Textual's own commands."""
        yield from super().get_system_commands(screen)
        own = {b.action for b in Binding.make_bindings(getattr(type(screen), "BINDINGS", []))}
        seen = {"quit", "help"}
        for active in screen.active_bindings.values():
            binding = active.binding
            if active.node is not screen or binding.action not in own or binding.action in seen:
                continue
            seen.add(binding.action)
            key = self.get_key_display(binding)
            yield SystemCommand(f"{binding.tooltip or binding.description} ({key})", f"key {key}", partial(self.run_action, binding.action, screen))
        yield SystemCommand("Help: all keys (?)", "Every key of every screen", self.action_help)


def create_app(engine: EngineView | None, **options) -> InsectConsole:
    """Build the console for `engine` (started or not). Options: clock, stats_provider,
    stats_interval, attach_only; for the stations overview (engine None): stations, stations_source, ssh."""
    return InsectConsole(engine, **options)


def run_stations(stations: Sequence[Station], source: str, log_dir: Path) -> int:
    """The stations overview in this terminal; enter opens a station's console."""
    return run_app(create_app(None, stations=stations, stations_source=source), log_dir)


# -- running it in a terminal -------------------------------------------------------------------


def _log_to_file(log_dir: Path) -> Callable[[], None]:
    """While the console owns the terminal, the engine's log goes to <log_dir>/console.log.

    Returns the function that puts logging back as it was.
    """
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(log_dir / "console.log", maxBytes=1 << 20, backupCount=2, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("insect_console")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # nothing may reach a stderr handler under the console's screen
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        handler.close()

    return undo


class _Shutdown:
    """Stops the engine once, from whichever comes first: the app ending, or SIGTERM / SIGHUP.

    On a hangup (SSH gone) the terminal is dead and Textual's writes to it can block the main
    thread for good, so the signal is handled on a thread of its own: it asks the app to exit,
    stops the engine (running jobs get the shutdown grace), and if the app still has not ended a
    few seconds later, ends the process.
    """

    EXIT_WAIT = 5.0

    def __init__(self, app: InsectConsole) -> None:
        self.app = app
        self.signal: int | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False

    def stop(self, grace: float | None) -> None:
        with self._lock:
            if not self._stopped:
                self._stopped = True
                if self.app.engine is not None:  # the app's engine: it may have been switched
                    self.app.engine.stop(grace)

    def on_signal(self, signum: int, _frame) -> None:
        if self.signal is None:
            self.signal = signum
            threading.Thread(target=self._after_signal, name="shutdown", daemon=True).start()

    def _after_signal(self) -> None:
        self.app.post_message(ExitRequested())
        self.stop(None)
        if not self.done.wait(self.EXIT_WAIT):
            os._exit(128 + (self.signal or 0))


def run_console(engine) -> int:
    """Start `engine` (an `Engine`), run the console on it, stop the engine on exit. Returns the
    exit code. When a daemon already schedules the config, the console attaches to it instead."""
    try:
        engine.start()
    except SchedulerRunning as e:
        from insect_console.control import DaemonGone
        from insect_console.remote import RemoteEngine

        remote = RemoteEngine.for_engine(engine)
        try:
            remote.start()
        except DaemonGone as gone:
            print(f"insect-console: {e}, and it does not answer on its control socket ({gone})", file=sys.stderr)
            return 2
        engine = remote
    return run_app(create_app(engine), engine.log_dir)


def run_attached(engine, log_dir: Path, attach_only: bool = False) -> int:
    """Attach `engine` (a RemoteEngine, or an SshEngine for a station elsewhere) and run the
    console on it; the daemon goes on when the console leaves. A daemon that can't be reached
    raises UserError (the CLI says it in one line) before the console takes the screen, so ssh
    can still ask for a passphrase on the terminal."""
    engine.start()
    return run_app(create_app(engine, attach_only=attach_only), log_dir)


def run_app(app: InsectConsole, log_dir: Path) -> int:
    """Run `app` in this terminal, logging to `log_dir`/console.log; stop its engine on the way
    out (also on SIGTERM or SIGHUP). Returns the exit code."""
    restore_logging = _log_to_file(log_dir)
    shutdown = _Shutdown(app)
    previous = {sig: signal.signal(sig, shutdown.on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    result = None
    try:
        result = app.run()
    finally:
        try:
            running = [] if app.attached else sorted(app.engine.active_runs())
            if running and shutdown.signal is None:
                names = ", ".join(running)
                if result == "stop":
                    _say(f"insect-console: stopping {names}…")
                else:
                    _say(f"insect-console: waiting up to {app.engine.settings.shutdown_grace} s for {names}…")
        finally:
            shutdown.stop(0 if result == "stop" else None)
            shutdown.done.set()
            for sig, old in previous.items():
                signal.signal(sig, old)
            restore_logging()
    if shutdown.signal is not None:
        return 128 + shutdown.signal
    return app.return_code or 0


def _say(line: str) -> None:
    """One line on stderr; the terminal may be gone (SSH hangup), which must not stop the shutdown."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
