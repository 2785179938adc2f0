"""Live output of one job: its running run as it is produced, or the last run's output file.

Lines come from the app's bounded `OutputHub` (runs of the engine) and are drained at most
`DRAIN_INTERVAL` apart, however fast the job prints. A run of another process (e.g. a `run-job`
from a shell) is followed by asking the engine for what its output file gained, on a worker.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Static

from insect_console.events import RunFinished, RunStarted
from insect_console.runoutput import MAX_LINES, OutputChunk
from insect_console.screens.base import ConsoleScreen
from insect_console.textfmt import display_path, parse_local, run_duration, short_duration, terminal_safe
from insect_console.widgets.bars import StatusLine, TopBar
from insect_console.widgets.cells import status_text, tone
from insect_console.widgets.output_view import FollowLog

DRAIN_INTERVAL = 0.1
"""Seconds between two drains of new output into the log (at most ten repaints a second)."""
FILE_POLL = 0.5


class FileTail(Message):
    def __init__(self, path: str, lines: list[str], more: bool, offset: int) -> None:
        super().__init__()
        self.path = path
        self.lines = lines
        self.more = more
        self.offset = offset


class FileGrew(Message):
    def __init__(self, path: str, lines: list[str], offset: int) -> None:
        super().__init__()
        self.path = path
        self.lines = lines
        self.offset = offset


class OutputScreen(ConsoleScreen):
    """The output of one job; follows the end until you scroll up."""

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the jobs"),
        Binding("end", "follow", "Follow", tooltip="Follow the end again (after scrolling up)"),
        Binding("r", "run_now", "Run", tooltip="Run this job now"),
        Binding("k", "kill", "Kill", tooltip="Kill its running run (asks first)"),
        Binding("e", "edit", "Edit", show=False, tooltip="Edit this job"),
        Binding("h", "history", "History", show=False, tooltip="History of this job"),
    ]

    def __init__(self, job_name: str) -> None:
        super().__init__()
        self.job_name = job_name
        self._run_id: str | None = None
        self._seq = 0
        self._finished_shown: str | None = None
        self._drain_scheduled = False
        self._last_drain = 0.0
        self._follow: tuple[str, int] | None = None  # (path, offset) of another process's run
        self._polling = False
        self._file: str | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"Output: {self.job_name}")
        yield Static("", id="output-info")
        yield FollowLog(MAX_LINES, id="output-log")
        yield Static("", id="output-state")
        yield StatusLine()
        yield Footer()

    @property
    def log_view(self) -> FollowLog:
        return self.query_one("#output-log", FollowLog)

    def on_mount(self) -> None:
        self.app.output_events.subscribe(self, self._output_available)
        log = self.log_view
        self.watch(log, "following", self._update_state)
        self.watch(log, "unseen", self._update_state)
        log.focus()
        self._open()
        self._update_info()
        self.set_interval(1.0, self._update_info)

    # -- where the lines come from ---------------------------------------------------

    def _open(self) -> None:
        chunk = self.app.output.read(self.job_name)
        if chunk.run_id is not None:
            self._show(chunk)
            return
        s = self.job_status(self.job_name)
        if s is not None and s.running and s.running_output_file:
            # a run of another process: show its file and follow it as it grows
            self._load_file(s.running_output_file, follow=True)
        elif s is not None and s.last_output_file:
            self._load_file(s.last_output_file, follow=False)
        else:
            self.log_view.write_line("(no output yet: this job has not run, or its last run printed nothing)")

    @work(thread=True, group="output-file", exit_on_error=False)
    def _load_file(self, path: str, follow: bool) -> None:
        lines, more, size = self.engine.output_tail(path, MAX_LINES)
        self.post_message(FileTail(path, lines, more, size if follow else -1))

    def on_file_tail(self, message: FileTail) -> None:
        self._file = message.path
        log = self.log_view
        if message.more:
            log.write_line(f"… earlier lines are in {display_path(message.path)}")
        if not message.lines and message.offset < 0:
            log.write_line("(the last run printed nothing)")
        log.add_lines(message.lines)
        if message.offset >= 0:
            self._follow = (message.path, message.offset)
            self.set_interval(FILE_POLL, self._poll_file)
        self._update_info()

    def _poll_file(self) -> None:
        if self._follow is not None and not self._polling:
            self._polling = True
            self._read_more(*self._follow)

    @work(thread=True, group="output-follow", exit_on_error=False)
    def _read_more(self, path: str, offset: int) -> None:
        lines, grown = [], offset
        try:
            lines, grown = self.engine.output_since(path, offset)
        finally:  # also after a failure: the next poll asks again
            self.post_message(FileGrew(path, lines, grown))

    def on_file_grew(self, message: FileGrew) -> None:
        self._polling = False
        if self._follow is not None and self._follow[0] == message.path:
            self._follow = (message.path, message.offset)
            self.log_view.add_lines(message.lines)

    def _output_available(self, job_name: str) -> None:
        if job_name == self.job_name:
            self._request_drain()

    def engine_event(self, event: Any) -> None:
        if getattr(event, "job_name", None) != self.job_name:
            return
        if isinstance(event, (RunStarted, RunFinished)):
            self._follow = None
            self._request_drain()
            self._update_info()

    def _request_drain(self) -> None:
        if self._drain_scheduled:
            return
        self._drain_scheduled = True
        delay = max(0.01, self._last_drain + DRAIN_INTERVAL - time.monotonic())  # a 0 s timer fails in Textual
        self.set_timer(delay, self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        self._last_drain = time.monotonic()
        self._show(self.app.output.read(self.job_name, self._run_id, self._seq))

    def _show(self, chunk: OutputChunk) -> None:
        if chunk.run_id is None:
            return
        log = self.log_view
        if chunk.run_id != self._run_id:
            started = chunk.started
            if self._run_id is not None or log.line_count:
                when = parse_local(started.start_time) if started else None
                log.add_lines([f"── new run {when:%H:%M:%S} ({started.trigger}) ──" if when and started else "── new run ──"])
            self._run_id = chunk.run_id
            self._finished_shown = None
            if started and started.output_file:
                self._file = started.output_file
        if chunk.dropped:
            log.add_lines([f"… {chunk.dropped} lines not kept here; the full output is in {display_path(self._file)}"])
        log.add_lines(chunk.lines)
        self._seq = chunk.start + len(chunk.lines)
        if chunk.finished and self._finished_shown != chunk.run_id and chunk.record is not None:
            record = chunk.record
            self._finished_shown = chunk.run_id
            log.add_lines([f"── {status_text(record.get('status')).plain} · {run_duration(record.get('duration_s'))}" + (f" · {record['error']}" if record.get("error") else "") + " ──"])

    # -- the info lines ----------------------------------------------------------

    def _update_info(self) -> None:
        info = Text()
        s = self.job_status(self.job_name)
        if s is None:
            info.append(f"{self.job_name}: no such job any more", style=tone("bold red"))
        elif s.running:
            since = s.running_since
            elapsed = (dt.datetime.now() - since).total_seconds() if since else None
            info.append(f"▶ running {short_duration(elapsed)}", style=tone("bold cyan"))
            info.append(f" · since {since:%H:%M:%S}" if since else "")
            info.append(f" · pid {s.running_pid}" if s.running_pid else "")
            if self.job_name not in self.engine.active_runs():
                info.append(" · in another process")
        elif s.waiting and s.last_run is None:
            info.append(f"⏸ waiting: {terminal_safe(s.waiting)}", style=tone("yellow"))
            info.append(f" · since {s.waiting_since:%H:%M:%S}" if s.waiting_since else "")
        else:
            if s.waiting:
                info.append(f"⏸ waiting: {terminal_safe(s.waiting)}", style=tone("yellow"))
                info.append(" · ")
            info.append("last run ")
            info.append(f"{s.last_run:%Y-%m-%d %H:%M:%S} · " if s.last_run else "— · ")
            info.append_text(status_text(s.last_status))
            if s.last_duration_s is not None:
                info.append(f" · took {run_duration(s.last_duration_s)}")
        info.append("\n")
        info.append(f"file {terminal_safe(display_path(self._file))}" if self._file else "file —", style="dim")
        self.query_one("#output-info", Static).update(info)

    def _update_state(self, _value: object = None) -> None:
        log = self.log_view
        if log.following:
            text = Text("following the end · scroll up to pause", style="dim")
        else:
            text = Text.assemble(("⏸ paused", tone("bold yellow")), f" · {log.unseen:,} new lines below · " if log.unseen else " · ", "end: follow")
        self.query_one("#output-state", Static).update(text)

    # -- actions ------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_follow(self) -> None:
        self.log_view.follow()

    def action_run_now(self) -> None:
        self.command("run", self.job_name)

    def action_kill(self) -> None:
        self.command("kill", self.job_name)

    def action_edit(self) -> None:
        self.command("edit", self.job_name)

    def action_history(self) -> None:
        self.command("history", self.job_name)
