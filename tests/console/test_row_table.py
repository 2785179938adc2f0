"""RowTable in a real Textual app: a row drawn before the table measured it is redrawn at full width."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Region

from insect_console.widgets.tables import RowTable

from .conftest import run

DETAIL = "exit status 1: camera not responding"


class OneTable(App):
    CSS = "RowTable { height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield RowTable()

    def on_mount(self) -> None:
        table = self.query_one(RowTable)
        table.add_column("Start", width=5)
        table.add_column("Details")


def _lines(table: RowTable) -> list[str]:
    return [strip.text for strip in table.render_lines(Region(0, 0, table.size.width, 3))]


def test_a_row_drawn_before_the_idle_pass_is_redrawn_at_its_measured_width():
    async def scenario() -> list[str]:
        app = OneTable()
        async with app.run_test(size=(60, 10)) as pilot:
            table = app.query_one(RowTable)
            await pilot.pause()
            table.add_row("0", DETAIL)
            before = _lines(table)  # what a frame drawn on a busy machine before the idle pass holds
            assert "exit st" in before[1] and DETAIL not in before[1]  # the frame this guards against
            await pilot.pause()
            await pilot.pause()
            return _lines(table)

    after = run(scenario())
    assert DETAIL in after[1], after
