"""A job's escape sequences never reach the operator's terminal (hostile environments, item 9).

What the console writes to its terminal is read from the driver itself: a headless driver that
says it is not headless, so the app renders every frame to it as it would to a real terminal.
The job prints an OSC title, an OSC 52 clipboard write, a clear-screen, a cursor move and Rich
markup; every place job text is drawn is opened: the live output, the last run's output file,
the history table, one run's record and a failure notification.
"""

from __future__ import annotations

import pytest
import textual.drivers.headless_driver as headless

from helpers import job
from insect_console.screens import HistoryScreen, OutputScreen, RunDetailScreen

from .conftest import fixed_stats, run, screen_text, wait_until

HOSTILE = r"A\033]0;PWNED-TITLE\007B\033]52;c;UFdORUQ=\007C\033[2J\033[HD\033[7;7HE[bold red]markup[/]F"
"""printf text: OSC 0 (window title), OSC 52 (clipboard), clear + home, a cursor move, markup."""
RAW = ("\x1b]0;PWNED-TITLE", "\x1b]52;", "\x1b[2J\x1b[HD", "D\x1b[7;7HE")


class RecordingDriver(headless.HeadlessDriver):
    """Renders like a terminal driver (is_headless False) and keeps what it is given."""

    written: list[str] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        RecordingDriver.written.append(data)


@pytest.fixture
def recording(monkeypatch):
    RecordingDriver.written = []
    monkeypatch.setattr(headless, "HeadlessDriver", RecordingDriver)
    return RecordingDriver.written


def test_job_escape_sequences_are_shown_escaped_everywhere(make_engine, recording):
    command = f"printf '{HOSTILE}\\n'; printf '{HOSTILE}\\n' >&2; exit 3"
    engine = make_engine([job("evil", command, "daily", "02:00", shell=True)], failure_threshold=1)
    from insect_console.app import create_app

    app = create_app(engine, stats_provider=fixed_stats)

    async def go():
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: "1" in screen_text(app).split("evil", 1)[-1].split("\n", 1)[0], what="the failure")
            await pilot.press("l")  # the last run's output file
            await wait_until(pilot, lambda: isinstance(app.screen, OutputScreen) and "markup" in screen_text(app), what="the output")
            await pilot.press("r")  # and the same again, live
            await wait_until(pilot, lambda: screen_text(app).count("markup") >= 2, what="the live output")
            await pilot.press("escape", "h")
            await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and "evil" in screen_text(app), what="the history")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and "markup" in screen_text(app), what="the run")
            return screen_text(app)

    text = run(go())
    written = "".join(recording)
    assert written, "the driver was given nothing: the check would be empty"
    for raw in RAW:
        assert raw not in written, f"{raw!r} reached the terminal"
    assert "[bold red]markup[/]" in text  # shown as the text it is, not as markup
    assert "\\x1b]0;PWNED-TITLE" in text  # and the escapes shown escaped
