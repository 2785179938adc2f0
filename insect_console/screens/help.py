"""`?`: every key of every screen, built from the screens' own BINDINGS so it never goes stale.

The App hands it the screens to describe (`HelpScreen([("Jobs", JobsScreen), ...])`), so this
module imports no other screen and not the app.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

EXTRA_KEYS: dict[str, list[tuple[str, str]]] = {
    "Jobs": [("enter", "Live output of the job"), ("↑ ↓ home end", "Move the cursor")],
    "Live output": [("↑ ↓ pgup home", "Scroll; scrolling up pauses following")],
    "History": [("enter", "Open the run: full record and output"), ("tab", "Next filter, then the table")],
    "Add / edit form": [("tab shift+tab", "Next / previous field"), ("space", "Flip a switch")],
    "Everywhere": [("ctrl+p", "Command palette: every action, per job too"), ("ctrl+q", "Quit")],
}


def sections(described: list[tuple[str, type]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per screen, its keys and what they do: from its BINDINGS, plus the keys widgets add."""
    out = []
    for title, cls in described:
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for binding in Binding.make_bindings(cls.BINDINGS):
            if binding.action in seen or not binding.description or binding.key == "ctrl+q":
                continue
            seen.add(binding.action)
            keys.append((_key(binding.key), binding.tooltip or binding.description))
        keys.extend(EXTRA_KEYS.get(title, []))
        out.append((title, keys))
    return out


def _key(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "space": "space", "escape": "esc", "ctrl+s": "ctrl+s"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, described: list[tuple[str, type]]) -> None:
        super().__init__()
        self.described = described

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for title, keys in sections(self.described):
            table.add_row(Text(title, style="bold underline"), "")
            for key, what in keys:
                table.add_row(key, what)
            table.add_row("", "")
        with VerticalScroll(id="help-body"):
            yield Static(table, id="help-keys")

    def on_mount(self) -> None:
        body = self.query_one("#help-body")
        body.border_title = "Keys"
        body.border_subtitle = "esc ? q close · ↑ ↓ scroll"
        body.focus()

    def action_close(self) -> None:
        self.dismiss(None)
