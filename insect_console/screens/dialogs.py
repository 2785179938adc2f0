"""Small modal questions: confirm, quit with runs in progress, waiting for runs to end."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no. `y` or the button confirms; `n` or `esc` cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(self, question: str, detail: str = "", yes_label: str = "Yes") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-question")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error", compact=True)
                yield Button("Cancel (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class QuitScreen(ModalScreen[str]):
    """Runs are in progress: wait for them, stop them, or cancel. Dismisses with "wait", "stop" or "cancel"."""

    BINDINGS = [
        Binding("w", "choose('wait')", "Wait"),
        Binding("s", "choose('stop')", "Stop them"),
        Binding("c,escape", "choose('cancel')", "Cancel"),
    ]

    def __init__(self, running: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.running = running

    def compose(self) -> ComposeResult:
        names = ", ".join(self.running)
        count = len(self.running)
        with Vertical(classes="dialog"):
            yield Static(f"{count} run{'s' if count != 1 else ''} in progress: {names}", classes="dialog-question")
            yield Static(
                "Wait: no new runs start; the console quits when these end.\nStop: their process trees are ended now and recorded as interrupted.",
                classes="dialog-detail",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Wait (w)", id="wait", compact=True)
                yield Button("Stop them (s)", id="stop", variant="error", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class WaitingScreen(ModalScreen[str]):
    """Shown while quitting waits for runs; `s` stops them instead."""

    BINDINGS = [Binding("s", "stop", "Stop them now")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("", id="waiting-text", classes="dialog-question")
            yield Static("No new runs start. The console quits when the runs end.", classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop them now (s)", id="stop", variant="error", compact=True)

    def on_mount(self) -> None:
        self.update_names()
        self.set_interval(0.5, self.update_names)

    def update_names(self) -> None:
        names = sorted(self.app.engine.active_runs())
        self.query_one("#waiting-text", Static).update(f"Waiting for {len(names)} run{'s' if len(names) != 1 else ''} to end: {', '.join(names) or '—'}")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss("stop")

    def action_stop(self) -> None:
        self.dismiss("stop")
