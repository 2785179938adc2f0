"""The console's DataTable: home/end go to the first/last row, and rows are never drawn at stale widths."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import DataTable


class RowTable(DataTable):
    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False),  # the stock ones scroll sideways
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    async def _on_idle(self, event: events.Idle) -> None:
        """Drop cached cells when an auto-width column grew.

        DataTable measures new rows only when it is idle, and caches each rendered cell without
        its width (textual#3533). A frame drawn between add_row and that idle pass (a busy
        machine) therefore kept a cell cut at the header's width, e.g. "exit st" for a long
        history detail, until something else changed the table.
        """
        widths = [column.content_width for column in self.columns.values()]
        await super()._on_idle(event)
        if [column.content_width for column in self.columns.values()] != widths:
            self._clear_caches()
            self.refresh()
