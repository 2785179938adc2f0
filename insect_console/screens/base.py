"""What every console screen shares: the bars, the engine, and the job commands.

The job commands (run, kill, enable/disable, delete, open output/form/history) live here so the
jobs table, the output viewer and the command palette run exactly the same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.screen import Screen

from insect_console.errors import AlreadyRunning, UserError

if TYPE_CHECKING:
    from insect_console.app import InsectConsole
    from insect_console.engine import Engine


class ConsoleScreen(Screen):
    """A full screen of the console. Subclasses get engine events through `engine_event()`."""

    app: "InsectConsole"

    @property
    def engine(self) -> "Engine":
        return self.app.engine

    def on_mount(self) -> None:
        self.app.engine_events.subscribe(self, self.engine_event)

    def engine_event(self, event: Any) -> None:
        """Called on the UI thread for every engine event (RunStarted, RunFinished, ...)."""

    # -- job commands ---------------------------------------------------------------

    def job_exists(self, name: str | None) -> bool:
        if name is None:
            self.notify("No job selected.", severity="warning")
            return False
        if name not in self.engine.config.names():
            self.notify(f"There is no job named {name!r} any more.", severity="warning")
            return False
        return True

    def run_job(self, name: str | None) -> None:
        if not self.job_exists(name):
            return
        try:
            self.engine.run_now(name)
        except AlreadyRunning as e:
            self.notify(str(e), severity="warning")
        except UserError as e:
            self.notify(str(e), severity="error")

    def kill_job(self, name: str | None) -> None:
        from insect_console.screens.dialogs import ConfirmScreen

        if name is None:
            self.notify("No job selected.", severity="warning")
            return
        active = self.engine.active_runs().get(name)
        if active is None:
            self.notify(f"{name} is not running in this console.", severity="warning")
            return
        pid = active.run.pid if active.run is not None else None
        tree = f"Its whole process tree (pid {pid})" if pid else "Its whole process tree"

        def confirmed(yes: bool | None) -> None:
            if yes and not self.engine.kill(name):
                self.notify(f"{name} had already finished.")

        self.app.push_screen(
            ConfirmScreen(f"Kill the running {name}?", f"{tree} is ended; the run is recorded as error.", "Kill"),
            confirmed,
        )

    def toggle_job(self, name: str | None) -> None:
        if not self.job_exists(name):
            return
        job = self.engine.config.job(name)
        self._set_enabled(name, not job.enabled)

    @work(thread=True, group="config", exit_on_error=False)
    def _set_enabled(self, name: str, enabled: bool) -> None:
        try:
            self.engine.set_enabled(name, enabled)
        except UserError as e:
            self.app.call_from_thread(self.notify, str(e), severity="error")
            return
        self.app.call_from_thread(self.notify, f"{name} {'enabled' if enabled else 'disabled'}.")

    def delete_job(self, name: str | None) -> None:
        from insect_console.screens.dialogs import ConfirmScreen

        if not self.job_exists(name):
            return
        running = name in self.engine.active_runs()
        detail = "Its run history is kept." + (" The run in progress goes on to its end." if running else "")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(name)

        self.app.push_screen(ConfirmScreen(f"Delete the job {name}?", detail, "Delete"), confirmed)

    @work(thread=True, group="config", exit_on_error=False)
    def _remove(self, name: str) -> None:
        try:
            self.engine.remove_job(name)
        except UserError as e:
            self.app.call_from_thread(self.notify, str(e), severity="error")
            return
        self.app.call_from_thread(self.notify, f"{name} deleted.")

    def open_output(self, name: str | None) -> None:
        from insect_console.screens.output import OutputScreen

        if self.job_exists(name):
            self.app.push_screen(OutputScreen(name))

    def open_form(self, name: str | None = None) -> None:
        from insect_console.screens.form import JobFormScreen

        if name is not None and not self.job_exists(name):
            return
        job = self.engine.config.job(name) if name is not None else None
        self.app.push_screen(JobFormScreen(job), self.form_saved)

    def form_saved(self, name: str | None) -> None:
        """Called with the saved job's name (None when the form was cancelled)."""

    def open_history(self, job: str | None = None) -> None:
        from insect_console.screens.history import HistoryScreen

        self.app.push_screen(HistoryScreen(job))
