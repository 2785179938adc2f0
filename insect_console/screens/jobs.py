"""The home screen: every job with its schedule, next run (live countdown), last result and failures.

Rows are keyed by job name and updated in place with `update_cell` once a second, only where a
cell changed, so the cursor stays where it is. Rows are rebuilt only when the set or order of
jobs changes (add, delete, rename, filter).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Label, Static

from insect_console.events import ConfigReloaded, RunFinished, RunSkipped, RunStarted, StatusChanged
from insect_console.screens.base import ConsoleScreen
from insect_console.surface import JobStatus
from insect_console.textfmt import clip, last_run_text, short_duration
from insect_console.widgets.bars import StatusLine, TopBar
from insect_console.widgets.cells import next_run_cell, status_text, tone
from insect_console.widgets.tables import RowTable

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Name", 14),
    ("on", "On", 2),
    ("schedule", "Schedule", 11),
    ("next", "Next run", 15),
    ("last", "Last run", 8),
    ("status", "Status", 11),
    ("fails", "Fail", 4),
)


class JobsScreen(ConsoleScreen):
    """The job table."""

    BINDINGS = [
        Binding("r", "run_now", "Run", tooltip="Run the selected job now"),
        Binding("l", "output", "Output", tooltip="Live output of the job (or its last run)"),
        Binding("a", "add", "Add", tooltip="Add a job"),
        Binding("e", "edit", "Edit", tooltip="Edit the job (a running job changes from its next run)"),
        Binding("space", "toggle", "On/off", show=False, tooltip="Enable or disable the job"),
        Binding("d", "delete", "Delete", show=False, tooltip="Delete the job (asks first)"),
        Binding("k", "kill", "Kill", show=False, tooltip="Kill the job's running run (asks first)"),
        Binding("h", "history", "History", tooltip="Run history, trends, filters"),
        Binding("slash", "filter", "Filter", tooltip="Filter the jobs by name"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="Clear the filter; else back to the stations overview, if it opened this"),
    ]

    def __init__(self) -> None:
        super().__init__(id="jobs-screen")
        self.filter_text = ""
        self._keys: list[str] = []
        self._cache: dict[tuple[str, str], Any] = {}
        self._detail: str | None = None

    def compose(self) -> ComposeResult:
        yield TopBar("Jobs")
        with Vertical(id="jobs-body"):
            yield RowTable(id="jobs-table", cursor_type="row")
            yield Static("No jobs. Press a to add one.", id="jobs-empty")
            yield Static("", id="jobs-detail")
            with Horizontal(id="jobs-filter"):
                yield Label("Filter /", id="filter-label")
                yield Input(placeholder="part of a job name · enter keeps it · esc clears", id="filter-input", compact=True)
        yield StatusLine()
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#jobs-table", DataTable)

    def on_mount(self) -> None:
        table = self.table
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        self.refresh_jobs()
        table.focus()
        self.watch(table, "scroll_y", lambda _old, _new: self.refresh_jobs(), init=False)  # rows scrolled into view
        self._tick()

    def _tick(self) -> None:
        """Refresh once a second, just after each second of the wall clock turns (countdowns step evenly)."""
        if self.is_current:
            self.refresh_jobs()
        self.set_timer(1.02 - time.time() % 1.0, self._tick)

    def on_screen_resume(self) -> None:
        self.refresh_jobs()

    def engine_event(self, event: Any) -> None:
        if isinstance(event, (RunStarted, RunFinished, RunSkipped, ConfigReloaded, StatusChanged)):
            self.refresh_jobs()

    # -- the table ------------------------------------------------------------------

    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    def refresh_jobs(self) -> None:
        """Re-read the engine's status and update the cells that changed."""
        status = self.engine.status()
        now = self.app.clock.now()
        threshold = self.engine.settings.failure_threshold
        wanted = self.filter_text.lower()
        rows = [s for s in status if wanted in s.name.lower()]
        keys = [s.name for s in rows]
        table = self.table
        if keys != self._keys:
            self._rebuild(keys, {s.name: self._cells(s, now, threshold) for s in rows})
        else:
            # only the rows on screen are drawn anew each second (a thousand jobs cost what a
            # screenful does); a row scrolled into view is brought up to date at the next tick
            first = max(0, int(table.scroll_y) - 1)
            shown = rows[first : first + table.size.height + 2]
            if table.cursor_row < len(rows) and not first <= table.cursor_row < first + len(shown):
                shown.append(rows[table.cursor_row])
            for name, row in ((s.name, self._cells(s, now, threshold)) for s in shown):
                for column, value in row.items():
                    if self._cache.get((name, column)) != value:
                        table.update_cell(name, column, value)
                        self._cache[(name, column)] = value
        self._show_detail({s.name: s for s in rows})
        empty = self.query_one("#jobs-empty", Static)
        empty.display = not keys
        if not keys:
            empty.update(f"No job matches {self.filter_text!r}. Esc clears the filter." if status else "No jobs. Press a to add one.")

    def _rebuild(self, keys: list[str], cells: dict[str, dict[str, Any]]) -> None:
        table = self.table
        selected = self.selected()
        old_row = table.cursor_row
        table.clear()
        self._cache.clear()
        for name in keys:
            row = cells[name]
            table.add_row(*(row[key] for key, _, _ in COLUMNS), key=name)
            self._cache.update({(name, column): value for column, value in row.items()})
        self._keys = keys
        if keys:
            row = keys.index(selected) if selected in keys else min(old_row, len(keys) - 1)
            table.move_cursor(row=row, animate=False)

    def _cells(self, s: JobStatus, now, threshold: int) -> dict[str, Any]:
        dim = "" if s.enabled else "dim"
        if s.running:
            elapsed = (dt.datetime.now() - s.running_since).total_seconds() if s.running_since else None  # real time: a real run
            status: Text = Text(f"▶ {short_duration(elapsed)}".rstrip(), style=tone("bold cyan"))
        elif s.waiting:
            status = Text("⏸ waiting", style=tone("yellow"))
        else:
            status = status_text(s.last_status)
        fails = s.error_count
        return {
            "name": Text(clip(s.name, 14), style="bold" if s.running else dim),
            "on": Text("●" if s.enabled else "○", style=tone("green") if s.enabled else "dim"),
            "schedule": Text(s.schedule, style=dim),
            "next": next_run_cell(s.next_run, now, s.enabled),
            "last": last_run_text(s.last_run, now),
            "status": status,
            "fails": Text(str(fails), style=tone("bold red" if fails >= threshold else ("yellow" if fails else "dim")), justify="right"),
        }

    def _show_detail(self, by_name: dict[str, JobStatus] | None = None) -> None:
        """The selected job's whole schedule in words under the table (its cell is cut to fit)."""
        name = self.selected()
        status = (by_name or {s.name: s for s in self.engine.status()}).get(name) if name else None
        text = "" if status is None else f"{clip(status.name, 20)} · {status.schedule}"
        if status is not None and status.next_run is not None and status.enabled:
            text += f" · next {status.next_run:%a %H:%M:%S}"
        if self._detail != text:
            self.query_one("#jobs-detail", Static).update(Text(clip(text, max(10, self.size.width - 2)), style="dim"))
            self._detail = text

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._keys:
            self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.command("output", event.row_key.value)

    # -- actions ------------------------------------------------------------------

    def action_run_now(self) -> None:
        self.command("run", self.selected())

    def action_output(self) -> None:
        self.command("output", self.selected())

    def action_add(self) -> None:
        self.command("add")

    def action_edit(self) -> None:
        self.command("edit", self.selected())

    def action_toggle(self) -> None:
        self.command("toggle", self.selected())

    def action_delete(self) -> None:
        self.command("delete", self.selected())

    def action_kill(self) -> None:
        self.command("kill", self.selected())

    def action_history(self) -> None:
        self.command("history")

    def show_job(self, name: str) -> None:
        """Put the cursor on `name` (a job just saved by the form)."""
        self.refresh_jobs()
        if name in self._keys:
            self.table.move_cursor(row=self._keys.index(name), animate=False)

    # -- filter ------------------------------------------------------------------

    def action_filter(self) -> None:
        bar = self.query_one("#jobs-filter")
        bar.display = True
        self.query_one("#filter-input", Input).focus()

    def action_clear_filter(self) -> None:
        bar = self.query_one("#jobs-filter")
        if not bar.display and not self.filter_text:
            self.command("back")  # the App decides where back is (the stations overview, if any)
            return
        self.query_one("#filter-input", Input).value = ""
        self.filter_text = ""
        bar.display = False
        self.table.focus()
        self.refresh_jobs()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter-input":
            event.stop()
            self.filter_text = event.value.strip()
            self.refresh_jobs()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter-input":
            event.stop()
            if not self.filter_text:
                self.query_one("#jobs-filter").display = False
            self.table.focus()
