"""Run history, newest first across the daily files, with filters and per-job trends.

The engine reads the files backwards lazily (`engine.history(query)`, a cursor); this screen
pulls pages of `PAGE` slim records (no output) from it on a worker as the cursor nears the
end, and stops at `MAX_ROWS`. The trend strips come from one bounded scan of the newest
records. Opening a run asks the engine for its full record and the tail of its output file.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Select, Static

from insect_console.events import RunFinished
from insect_console.history import STATUSES, HistoryQuery
from insect_console.runoutput import MAX_LINES
from insect_console.screens.base import ConsoleScreen
from insect_console.surface import HistoryPages
from insect_console.textfmt import clip, display_path, one_line, parse_local, run_duration, sparkline, terminal_safe
from insect_console.widgets.bars import StatusLine, TopBar
from insect_console.widgets.cells import result_strip, status_text, tone
from insect_console.widgets.output_view import FollowLog
from insect_console.widgets.tables import RowTable

PAGE = 200
MAX_ROWS = 5000
TREND_WIDTH = 24
TREND_ROWS = 5


class HistoryPage(Message):
    def __init__(self, generation: int, records: list[dict[str, Any]], done: bool, skipped: int) -> None:
        super().__init__()
        self.generation = generation
        self.records = records
        self.done = done
        self.skipped = skipped


class Trends(Message):
    def __init__(self, per_job: dict[str, list[tuple[str, float | None]]]) -> None:
        super().__init__()
        self.per_job = per_job


class HistoryScreen(ConsoleScreen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back (from a filter: to the table)"),
        Binding("slash", "filter", "Filter", tooltip="Filter by job, status, day"),
        Binding("r", "reload", "Reload", tooltip="Read the history again (new runs)"),
    ]

    def __init__(self, job: str | None = None) -> None:
        super().__init__()
        self.initial_job = job
        self._generation = 0
        self._active_query: HistoryQuery | None = None
        self._trends: Trends | None = None
        self._records: list[dict[str, Any]] = []
        self._cursor: HistoryPages | None = None
        self._loading = False
        self._done = False
        self._skipped = 0
        self._new_runs = 0

    def compose(self) -> ComposeResult:
        names = self.engine.config.names()
        job = self.initial_job if self.initial_job in names else ""
        yield TopBar("History")
        with Horizontal(id="history-filters"):
            yield Label("Job", classes="inline-label")
            yield Select([("all jobs", "")] + [(n, n) for n in names], value=job, allow_blank=False, id="f-job", compact=True)
            yield Label("Status", classes="inline-label")
            yield Select([("any", "")] + [(s, s) for s in STATUSES], value="", allow_blank=False, id="f-status", compact=True)
            yield Label("Day", classes="inline-label")
            yield Input(placeholder="YYYY-MM-DD", id="f-day", max_length=10, compact=True)
        yield Static("", id="trends")
        yield RowTable(id="runs-table", cursor_type="row")
        yield Static("", id="history-info")
        yield StatusLine()
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#runs-table", DataTable)

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.query_one("#f-day", Input).cursor_blink = False
        table = self.table
        table.add_column("Start", key="start", width=14)
        table.add_column("Job", key="job", width=14)
        table.add_column("Status", key="status", width=11)
        table.add_column("Took", key="took", width=6)
        table.add_column("Details", key="details")
        table.focus()
        self.start_query()
        self.load_trends()

    # -- the query -----------------------------------------------------------------

    def current_query(self) -> HistoryQuery | None:
        """The filters as a HistoryQuery, or None while the day is not a valid date."""
        job = self.query_one("#f-job", Select).value or None
        status = self.query_one("#f-status", Select).value or None
        text = self.query_one("#f-day", Input).value.strip()
        day = None
        if text:
            try:
                day = dt.date.fromisoformat(text)
            except ValueError:
                return None
        return HistoryQuery(job=job, status=status, since=day, until=day, limit=None)

    def start_query(self, force: bool = False) -> None:
        """Read the history for the current filters (not again when they did not change)."""
        q = self.current_query()
        day_input = self.query_one("#f-day", Input)
        day_input.set_class(q is None, "-invalid")
        if q is None:
            self._info("✗ day: use YYYY-MM-DD, e.g. 2026-03-14", "bold red")
            return
        if not force and q == self._active_query:
            return  # e.g. the Selects' own first Changed events: one scan, not three
        self._active_query = q
        self._generation += 1
        self._records = []
        if self._cursor is not None:
            self._cursor.close()  # a newer query stops the older scan
        self._cursor = self.engine.history(q)
        self._done = False
        self._loading = False
        self._new_runs = 0
        self.table.clear()
        self.load_more()

    def load_more(self) -> None:
        if self._loading or self._done or self._cursor is None:
            return
        if len(self._records) >= MAX_ROWS:
            return
        self._loading = True
        self._info("loading…")
        self._fetch(self._generation, self._cursor, PAGE if self._records else 100)

    @work(thread=True, group="history-page", exit_on_error=False)
    def _fetch(self, generation: int, cursor: HistoryPages, count: int) -> None:
        page = cursor.next_page(count)
        if generation == self._generation:
            self.post_message(HistoryPage(generation, page.records, page.done, page.skipped))

    def on_history_page(self, message: HistoryPage) -> None:
        if message.generation != self._generation:
            return
        self._loading = False
        self._done = message.done
        self._skipped = message.skipped
        table = self.table
        base = len(self._records)
        for i, record in enumerate(message.records, base):
            if i >= MAX_ROWS:
                self._done = True
                break
            self._records.append(record)
            table.add_row(*self._cells(record), key=str(i))
        self._show_info()
        if not self._done and table.row_count < table.size.height + 20:
            self.load_more()

    def _cells(self, r: dict[str, Any]) -> list[Any]:
        start = parse_local(r.get("start_time"))
        details = r.get("error") or (f"exit {r['exit_code']}" if r.get("exit_code") not in (None, 0) else "")
        if r.get("trigger") and r.get("trigger") != "schedule":
            details = f"[{r['trigger']}] {details}".strip()
        return [
            start.strftime("%m-%d %H:%M:%S") if start else "?",
            Text(clip(terminal_safe(str(r.get("job_name") or "?")), 14)),
            status_text(r.get("status")),
            Text(run_duration(r.get("duration_s")) if r.get("duration_s") is not None else "—", justify="right"),
            Text(terminal_safe(one_line(details))),
        ]

    def _show_info(self) -> None:
        n = len(self._records)
        parts = [f"{n:,} run{'s' if n != 1 else ''}"]
        if self._done and n >= MAX_ROWS:
            parts.append(f"first {MAX_ROWS:,} shown: narrow the filter")
        elif self._done:
            parts.append("end of history" if n else "nothing matches")
        else:
            parts.append("more below")
        if self._skipped:
            parts.append(f"{self._skipped} malformed line{'s' if self._skipped != 1 else ''} skipped")
        if self._new_runs:
            parts.append(f"{self._new_runs} new: r reloads")
        self._info(" · ".join(parts))

    def _info(self, text: str, style: str = "dim") -> None:
        self.query_one("#history-info", Static).update(Text(" " + text, style=tone(style)))

    @on(DataTable.RowHighlighted, "#runs-table")
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.table.row_count - 20:
            self.load_more()

    @on(DataTable.RowSelected, "#runs-table")
    def _open_run(self, event: DataTable.RowSelected) -> None:
        event.stop()
        index = int(event.row_key.value)
        if 0 <= index < len(self._records):
            self.command("run-detail", self._records[index].get("job_name"), self._records[index])

    # -- trends ------------------------------------------------------------------

    @work(thread=True, group="history-trends", exclusive=True, exit_on_error=False)
    def load_trends(self) -> None:
        self.post_message(Trends(self.engine.recent_results(self.engine.config.names(), TREND_WIDTH)))

    def on_trends(self, message: Trends) -> None:
        self._trends = message
        lines = Text()
        shown = list(message.per_job.items())
        job = self.query_one("#f-job", Select).value
        if job:
            shown = [(n, v) for n, v in shown if n == job]
        for n, (name, results) in enumerate(shown[:TREND_ROWS]):
            results = list(reversed(results))  # oldest first
            statuses = [s for s, _ in results]
            durations = [d for _, d in results if isinstance(d, (int, float))]
            if n:
                lines.append("\n")
            lines.append(f" {clip(name, 14):<14} ")
            if not results:
                lines.append("no recent runs", style="dim")
                continue
            strip = result_strip(statuses, TREND_WIDTH)
            strip.pad_right(TREND_WIDTH - len(strip.plain))
            lines.append_text(strip)
            lines.append(" ")
            lines.append(f"{sparkline(durations, TREND_WIDTH):<{TREND_WIDTH}}", style=tone("cyan"))
            if durations:
                lines.append(f" last {run_duration(durations[-1])}", style="dim")
        if len(shown) > TREND_ROWS:
            lines.append(f"\n {len(shown) - TREND_ROWS} more jobs: pick one in the Job filter", style="dim")
        self.query_one("#trends", Static).update(lines)

    # -- filters and keys -------------------------------------------------------------

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self.is_mounted:
            self.start_query()
            if self._trends is not None:  # the trends are of all jobs; only what is shown changes
                self.on_trends(self._trends)

    @on(Input.Changed, "#f-day")
    def _day_changed(self, event: Input.Changed) -> None:
        event.stop()
        text = event.value.strip()
        if not text or len(text) == 10:
            self.start_query()

    @on(Input.Submitted, "#f-day")
    def _day_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start_query()
        self.table.focus()

    def engine_event(self, event: Any) -> None:
        if isinstance(event, RunFinished):
            self._new_runs += 1
            if not self._loading:
                self._show_info()

    def on_unmount(self) -> None:
        if self._cursor is not None:
            self._cursor.close()

    def action_back(self) -> None:
        if self.focused is not None and self.focused.id in ("f-job", "f-status", "f-day"):
            self.table.focus()
            return
        self.dismiss()

    def action_filter(self) -> None:
        self.query_one("#f-job", Select).focus()

    def action_reload(self) -> None:
        self.start_query(force=True)
        self.load_trends()


class RunLoaded(Message):
    def __init__(self, record: dict[str, Any] | None, lines: list[str], more: bool, source: str) -> None:
        super().__init__()
        self.record = record
        self.lines = lines
        self.more = more
        self.source = source


class RunDetailScreen(ConsoleScreen):
    """One run: its full record and its output (the output file, else the record's tail)."""

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the history"),
        Binding("l", "output", "Job output", show=False, tooltip="Live output of this run's job"),
    ]

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        yield TopBar(f"Run of {self.record.get('job_name')}")
        yield Static(self._describe(self.record), id="run-record")
        yield FollowLog(MAX_LINES, id="run-output")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#run-output", FollowLog).focus()
        self._load(self.record)

    @work(thread=True, group="run-detail", exit_on_error=False)
    def _load(self, record: dict[str, Any]) -> None:
        full = self.engine.run_record(record)
        path = record.get("output_file")
        if path:
            lines, more, _size = self.engine.output_tail(path, MAX_LINES)
            if lines or more:
                self.post_message(RunLoaded(full, lines, more, display_path(path)))
                return
        output = (full or {}).get("output") or ""
        source = "the record's output tail (no output file)" if output else "no output"
        self.post_message(RunLoaded(full, output.splitlines()[-MAX_LINES:], False, source))

    def on_run_loaded(self, message: RunLoaded) -> None:
        if message.record is not None:
            self.record = message.record
            self.query_one("#run-record", Static).update(self._describe(message.record))
        log = self.query_one("#run-output", FollowLog)
        log.border_title = f"output: {message.source}"
        if message.more:
            log.write_line(f"… only the last {MAX_LINES:,} lines are shown")
        log.add_lines(message.lines or ["(nothing)"])

    @staticmethod
    def _describe(r: dict[str, Any]) -> Text:
        start, end = parse_local(r.get("start_time")), parse_local(r.get("end_time"))
        text = Text()
        text.append(f" {terminal_safe(str(r.get('job_name')))}  ", style="bold")
        text.append_text(status_text(r.get("status")))
        text.append(f"  ({terminal_safe(str(r.get('trigger') or '?'))})\n", style="dim")
        text.append(f" start {start:%Y-%m-%d %H:%M:%S}" if start else " start ?")
        text.append(f"   end {end:%H:%M:%S}" if end else "")
        text.append(f"   took {run_duration(r.get('duration_s'))}")
        text.append(f"   exit {r.get('exit_code') if r.get('exit_code') is not None else '—'}\n")
        if r.get("error"):
            text.append(" error ", style=tone("bold red"))
            text.append(clip(terminal_safe(one_line(str(r["error"]))), 200) + "\n")
        text.append(f" run   {terminal_safe(str(r.get('run_id') or '—'))}\n", style="dim")
        text.append(f" file  {terminal_safe(display_path(r.get('output_file')))}", style="dim")
        return text

    def action_back(self) -> None:
        self.dismiss()

    def action_output(self) -> None:
        self.command("output", self.record.get("job_name"))

