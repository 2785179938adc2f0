"""Many stations at a glance: one row per station (reachable, jobs, failing, running, the next
run, the last error), each row kept fresh by a look of its own over ssh.

Every station is looked at on its own worker thread (stations.StationProbe), at once and every
`REFRESH` seconds, so a slow or dead station only ever holds up its own row. The screen takes
the stations in and asks the App to open one (`Command("open-station")`); the App connects and
shows that station's console, and `esc` there comes back here. Leaving ends every look under
way (their ssh processes too).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from insect_console.screens.base import Command, ConsoleScreen
from insect_console.stations import Station, StationProbe, StationSummary
from insect_console.textfmt import clip, one_line
from insect_console.widgets.bars import TopBar
from insect_console.widgets.cells import next_run_cell, tone
from insect_console.widgets.tables import RowTable

REFRESH = 30.0
"""Seconds between two looks at a station."""
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Station", 14),
    ("up", "Up", 4),
    ("jobs", "Jobs", 4),
    ("failing", "Fail", 4),
    ("running", "Run", 3),
    ("next", "Next run", 15),
    ("error", "Last error", 21),
)


class StationChecked(Message):
    def __init__(self, summary: StationSummary) -> None:
        super().__init__()
        self.summary = summary


class StationsScreen(ConsoleScreen):
    """The overview of many stations: the home screen of `insect-console stations`."""

    BINDINGS = [
        Binding("enter", "open", "Open", priority=True, tooltip="Open the station's console (esc there comes back)"),
        Binding("r", "refresh", "Refresh", tooltip="Look at every station again now"),
    ]

    def __init__(self, stations: Sequence[Station], source: str = "", ssh: Sequence[str] | None = None) -> None:
        super().__init__(id="stations-screen")
        self.stations = list(stations)
        self.source = source
        self.ssh = ssh
        self.summaries: dict[str, StationSummary] = {s.name: StationSummary(s.name) for s in self.stations}
        self._probes: dict[str, StationProbe] = {}
        """The looks under way, by station: at most one each."""

    def compose(self) -> ComposeResult:
        yield TopBar("Stations")
        yield RowTable(id="stations-table", cursor_type="row")
        yield Static("", id="station-detail")
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#stations-table", DataTable)

    def on_mount(self) -> None:
        table = self.table
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        now = dt.datetime.now()
        for station in self.stations:
            table.add_row(*self._cells(self.summaries[station.name], now).values(), key=station.name)
        table.focus()
        self.action_refresh()
        self.set_interval(REFRESH, self.action_refresh)
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        for probe in list(self._probes.values()):
            probe.cancel()

    # -- looking at the stations ------------------------------------------------------

    def action_refresh(self) -> None:
        for station in self.stations:
            if station.name not in self._probes:
                probe = self._probes[station.name] = StationProbe(station, self.ssh)
                self.run_worker(lambda probe=probe: self._look(probe), name=f"look at {station.name}", group=f"station-{station.name}",
                                thread=True, exit_on_error=False)

    def _look(self, probe: StationProbe) -> None:
        """On the station's own worker thread."""
        summary = probe.run()
        self.post_message(StationChecked(summary))

    def on_station_checked(self, message: StationChecked) -> None:
        summary = message.summary
        self._probes.pop(summary.name, None)
        self.summaries[summary.name] = summary
        self._update_row(summary)
        self._show_detail()

    def _tick(self) -> None:
        """The countdowns of the next runs."""
        for summary in self.summaries.values():
            if summary.next_run is not None:
                self.table.update_cell(summary.name, "next", next_run_cell(summary.next_run, dt.datetime.now()))

    def _update_row(self, summary: StationSummary) -> None:
        for column, value in self._cells(summary, dt.datetime.now()).items():
            self.table.update_cell(summary.name, column, value)

    def _cells(self, s: StationSummary, now: dt.datetime) -> dict[str, Any]:
        if s.reachable is None:
            return {"name": Text(clip(s.name, 14), style="bold"), "up": Text("…", style="dim"), "jobs": "", "failing": "",
                    "running": "", "next": Text("looking…", style="dim"), "error": ""}
        if not s.reachable:
            return {"name": Text(clip(s.name, 14), style="bold"), "up": Text("✗ no", style=tone("bold red")), "jobs": "", "failing": "",
                    "running": "", "next": Text("—", style="dim"), "error": Text(clip(one_line(s.last_error or "unreachable"), 21), style=tone("red"))}
        return {
            "name": Text(clip(s.name, 14), style="bold"),
            "up": Text("✓ up", style=tone("green")),
            "jobs": Text(str(s.jobs), justify="right"),
            "failing": Text(str(s.failing), style=tone("bold red") if s.failing else "dim", justify="right"),
            "running": Text(str(s.running), style=tone("bold cyan") if s.running else "dim", justify="right"),
            "next": next_run_cell(s.next_run, now) if s.next_run else Text("—", style="dim"),
            "error": Text(clip(one_line(s.last_error), 21), style=tone("yellow")) if s.last_error else Text("none", style="dim"),
        }

    # -- the selected station --------------------------------------------------------------

    def selected(self) -> Station | None:
        table = self.table
        if table.row_count == 0:
            return None
        name = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((s for s in self.stations if s.name == name), None)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        station = self.selected()
        if station is None:
            return
        s = self.summaries[station.name]
        text = Text()
        text.append(station.name, style="bold")
        text.append(f"  {station.host} · {station.config}\n", style="dim")
        if s.reachable is None:
            text.append("looking…", style="dim")
        elif not s.reachable:
            text.append("unreachable: ", style=tone("bold red"))
            text.append(one_line(s.last_error or "?"))
        else:
            text.append(f"{s.daemon or 'insect-console'} · daemon pid {s.daemon_pid}")
            if s.next_job:
                text.append(f" · next: {s.next_job}")
            if s.last_error:
                text.append("\nlast error: ", style=tone("yellow"))
                text.append(one_line(s.last_error))
        if s.checked is not None:
            text.append(f"\nchecked {s.checked:%H:%M:%S}" + (f" · {self.source}" if self.source else ""), style="dim")
        self.query_one("#station-detail", Static).update(text)

    def action_open(self) -> None:
        station = self.selected()
        if station is not None:
            self.post_message(Command("open-station", station=station))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # a click; the enter key is the screen's own binding
        self.action_open()
