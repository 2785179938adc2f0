"""Add or edit a job. Every check is the engine's own validator (`insect_console.jobs`).

Fields are checked as you type (once you have touched them) with the same per-field functions
`make_job` is built from, and the whole job with `make_job` on save. Saving goes through the
engine's locked, atomic config store and the engine reschedules at once. A running job can be
edited; the change applies from its next run.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Collapsible, Footer, Input, Label, Select, Static, Switch

from insect_console import jobs as jobmod
from insect_console.errors import UserError, ValidationError
from insect_console.jobs import Job
from insect_console.screens.base import ConsoleScreen
from insect_console.policies import RunPolicy
from insect_console.widgets.bars import StatusLine, TopBar
from insect_console.widgets.cells import tone
from insect_console.widgets.policy_fields import PolicyFields

FIELDS = ("name", "command", "shell", "schedule_type", "schedule_time", "window", "jitter", "timeout", "enabled")
ERROR_LABELS = {"schedule_time": "time", "schedule_type": "schedule"}
ERROR_TARGETS = {"schedule_type": "schedule_time", "jitter": "window"}
"""Fields whose errors show under another field's row (the type under its time, jitter beside the window)."""
TIME_HINTS = {
    "interval": "3600, 90s, 15m, 1h",
    "daily": "HH:MM, e.g. 02:00",
    "weekly": "sunday, or sun 03:00",
    "cron": "*/10 5-21 * * 1-5, @daily",
    "sun": "sunset+00:30, dawn-15m",
    "boot": "5m after boot",
}
TIME_FORMS = jobmod.FORMS
PREVIEW_COUNT = 5
CLI_HINT = "run it through a shell with --shell (shell = true in the config)"
"""The engine's advice for the CLI; in the form the same advice is "switch Shell on"."""


class Saved(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class SaveFailed(Message):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__()
        self.field = field
        self.reason = reason


class Previewed(Message):
    """The next due times of the schedule as typed (computed by the engine on a worker)."""

    def __init__(self, schedule: tuple, runs: list) -> None:
        super().__init__()
        self.schedule = schedule
        self.runs = runs


def preview_line(runs: list, about: bool = False) -> str:
    """The next due times in one line (two at most at 80 columns): the day only when it changes.
    "Wed 21:00:00 · 21:10:00 · 21:20:00", "Wed 16:25:12 · Thu 16:24:36 · ..."."""
    parts, day = [], None
    for when in runs:
        parts.append(f"{when:%H:%M:%S}" if when.date() == day else f"{when:%a %H:%M:%S}")
        day = when.date()
    return ("about " if about else "next ") + " · ".join(parts)


class FormBody(VerticalScroll, can_focus=False):
    """The fields; scrolls when the terminal is short, but is not a tab stop itself."""


class JobFormScreen(ConsoleScreen):
    """Dismisses with the saved job's name, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True, tooltip="Save (checked by the engine's validator)"),
        Binding("escape", "cancel", "Cancel", tooltip="Leave without saving"),
    ]

    def __init__(self, job: Job | None = None) -> None:
        super().__init__()
        self.job = job
        self.touched: set[str] = set()
        self._words = ""
        self._initial: dict[str, Any] = {}
        self.saving = False

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        job = self.job
        kind = job.schedule_type if job else "interval"
        yield TopBar(f"Edit {job.name}" if job else "Add a job")
        with FormBody(id="form"):
            if job is not None and job.name in self.engine.active_runs():
                yield Static("This job is running now; changes apply from its next run.", id="form-running")
            with Horizontal(classes="field"):
                yield Label("Name", classes="field-label")
                yield Input(job.name if job else "", placeholder="letters, digits, _ - .", id="name", compact=True)
            yield Static("", id="err-name", classes="field-error")
            with Horizontal(classes="field"):
                yield Label("Command", classes="field-label")
                yield Input(job.command if job else "", placeholder="program and arguments", id="command", compact=True)
            yield Static("", id="err-command", classes="field-error")
            with Horizontal(classes="field"):
                yield Label("Shell", classes="field-label")
                yield Switch(job.shell if job else False, id="shell")
                yield Label("", id="shell-state", classes="switch-state")
            yield Static("", id="err-shell", classes="field-error")
            with Horizontal(classes="field"):
                yield Label("Schedule", classes="field-label")
                yield Select([(k, k) for k in jobmod.SCHEDULE_TYPES], value=kind, allow_blank=False, id="schedule_type", compact=True)
                yield Label("time", classes="inline-label")
                yield Input(job.schedule_time if job else "", placeholder=TIME_HINTS[kind], id="schedule_time", compact=True)
            yield Static("", id="err-schedule_time", classes="field-hint")
            with Horizontal(classes="field"):
                yield Label("Window", classes="field-label")
                yield Input(job.window or "" if job else "", placeholder="interval, cron: sunset+30m..sunrise-1h", id="window", compact=True)
                yield Label("jitter", classes="inline-label")
                yield Input(job.jitter or "" if job else "", placeholder="e.g. 5m", id="jitter", compact=True, classes="short")
            yield Static("", id="err-window", classes="field-error")
            with Horizontal(classes="field"):
                yield Label("Timeout", classes="field-label")
                yield Input(str(job.timeout) if job and job.timeout else "", placeholder=f"seconds (empty: {self.engine.settings.default_timeout})", id="timeout", compact=True)
            yield Static("", id="err-timeout", classes="field-error")
            with Horizontal(classes="field"):
                yield Label("Enabled", classes="field-label")
                yield Switch(job.enabled if job else True, id="enabled")
                yield Label("", id="enabled-state", classes="switch-state")
            yield Static("", id="err-enabled", classes="field-error")
            policy = job.policy if job else RunPolicy()
            with Collapsible(title="Run policies: retries, catch-up, conditions, chain, group", collapsed=policy == RunPolicy(), id="policies"):
                yield PolicyFields(policy, id="policy")
            yield Static("", id="err-form", classes="field-error")
            with Horizontal(id="form-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        if self.app.is_headless:
            for widget in self.query(Input):
                widget.cursor_blink = False
        self._initial = self.values()
        self._show_switches()
        self._check_schedule(show_errors=False)
        self.query_one("#name", Input).focus()

    # -- values --------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The form as the dict `make_job` takes (cwd and env of an edited job are kept)."""
        data: dict[str, Any] = {
            "name": self.query_one("#name", Input).value.strip(),
            "command": self.query_one("#command", Input).value.strip(),
            "shell": self.query_one("#shell", Switch).value,
            "schedule_type": self.query_one("#schedule_type", Select).value,
            "schedule_time": self.query_one("#schedule_time", Input).value.strip(),
            "window": self.query_one("#window", Input).value.strip() or None,
            "jitter": self.query_one("#jitter", Input).value.strip() or None,
            "timeout": self.query_one("#timeout", Input).value.strip() or None,
            "enabled": self.query_one("#enabled", Switch).value,
        }
        if self.job is not None:  # what the form does not show is kept as it was (cwd, env, pings)
            policy_keys = set(RunPolicy().__dataclass_fields__)
            data.update({k: v for k, v in self.job.to_dict().items() if k not in data and k not in policy_keys})
        try:
            data.update(self.query_one(PolicyFields).values())
        except ValidationError:
            pass  # shown under the policy fields; make_job refuses the rest on save
        return data

    # -- checks as you type ----------------------------------------------------------

    def set_error(self, field: str, reason: str | None) -> None:
        """Show `reason` under the field (or under the form for other fields); None clears it."""
        target = ERROR_TARGETS.get(field, field)
        if target not in FIELDS:
            target = "form"
        widget = self.query_one(f"#err-{target}", Static)
        if reason:
            if target == "form":
                message = f"✗ {reason}" if field == "form" else f"✗ {field}: {reason}"
            else:
                message = f"✗ {ERROR_LABELS.get(field, field)} {reason.replace(CLI_HINT, 'switch Shell on to use a shell')}"
            widget.update(Text(message, style=tone("bold red")))
        elif target != "schedule_time":
            widget.update("")
        widget.set_class(bool(reason), "-error")
        if target in FIELDS:
            for control in self.query(f"#{target}"):
                control.set_class(bool(reason), "-invalid")

    def check_field(self, field: str, show_errors: bool = True) -> bool:
        data = self.values()
        try:
            if field == "name":
                jobmod.validate_name(data["name"])
                original = self.job.name if self.job else None
                if data["name"] != original and data["name"] in self.engine.config.names():
                    raise ValidationError("name", f"{data['name']!r} is taken by another job")
            elif field == "command":
                jobmod.validate_command(data["command"], data["shell"])
            elif field == "timeout":
                jobmod.validate_timeout(data["timeout"])
            elif field in ("schedule_type", "schedule_time", "window", "jitter"):
                return self._check_schedule(show_errors)
        except ValidationError as e:
            if show_errors:
                self.set_error(field, e.reason)
            return False
        self.set_error(field, None)
        return True

    def _schedule_of(self, data: dict[str, Any]) -> tuple:
        """The schedule as typed, in its stored form: (type, time, window, jitter). Raises ValidationError."""
        kind, when = jobmod.normalize_schedule(data["schedule_type"], data["schedule_time"])
        if kind == "cron":
            jobmod.cron_fields(when)
        return kind, when, jobmod.normalize_window(kind, data["window"]), jobmod.normalize_jitter(data["jitter"])

    def _check_schedule(self, show_errors: bool = True) -> bool:
        data = self.values()
        hint = self.query_one("#err-schedule_time", Static)
        self.set_error("window", None)
        try:
            schedule = self._schedule_of(data)
            probe = Job("preview", "true", *schedule[:2], window=schedule[2], jitter=schedule[3])
            words = probe.when.describe()
            settings = self.engine.settings
            jobmod.check_place(probe, settings.latitude, settings.longitude)
        except ValidationError as e:
            if show_errors or e.field in ("window", "jitter"):
                self.set_error(e.field, e.reason)
            if e.field not in ("window", "jitter") and not show_errors:
                hint.update(Text(TIME_FORMS.get(str(data["schedule_type"]), ""), style="dim"))
            return False
        self.set_error("schedule_time", None)
        self._words = words
        self._show_preview(schedule, [])
        self._preview(schedule)
        return True

    @work(thread=True, group="preview", exclusive=True, exit_on_error=False)
    def _preview(self, schedule: tuple) -> None:
        name = self.query_one("#name", Input).value.strip() or "preview"  # the jitter is keyed by the job's name
        job = Job(name, "true", *schedule[:2], window=schedule[2], jitter=schedule[3])
        self.post_message(Previewed(schedule, self.engine.preview(job, PREVIEW_COUNT)))

    def on_previewed(self, message: Previewed) -> None:
        self._show_preview(message.schedule, message.runs)

    def _show_preview(self, schedule: tuple, runs: list) -> None:
        try:
            if self._schedule_of(self.values()) != schedule:
                return  # typed on since: a newer preview is on its way
        except ValidationError:
            return
        text = Text.assemble(("→ ", "dim"), (self._words, "bold"))
        if runs:
            text.append("\n" + preview_line(runs, about=schedule[0] == "interval" and schedule[2] is None), style="dim")
        self.query_one("#err-schedule_time", Static).update(text)

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        field = event.input.id or ""
        if field not in FIELDS:
            return
        event.stop()
        if field not in self.touched and event.value.strip() == (self._initial.get(field) or ""):
            return  # the initial value being set, not typing
        self.touched.add(field)
        self.check_field(field)

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    @on(Select.Changed, "#schedule_type")
    def _type_changed(self, event: Select.Changed) -> None:
        event.stop()
        kind = str(event.value)
        self.query_one("#schedule_time", Input).placeholder = TIME_HINTS.get(kind, "")
        self._check_schedule(show_errors="schedule_time" in self.touched)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._show_switches()
        if event.switch.id == "shell" and ("command" in self.touched or self.query_one("#command", Input).value):
            self.check_field("command")

    def _show_switches(self) -> None:
        shell = self.query_one("#shell", Switch).value
        self.query_one("#shell-state", Label).update("on: run through /bin/sh (pipes, >, $VAR)" if shell else "off: run the program directly")
        enabled = self.query_one("#enabled", Switch).value
        self.query_one("#enabled-state", Label).update("on: runs on its schedule" if enabled else "off: runs only when started by hand")

    # -- saving ------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        if self.saving:
            return
        for field in ("name", "command", "schedule_time", "timeout"):
            self.check_field(field)
        self.set_error("form", None)
        policy_ok = self.query_one(PolicyFields).check()
        try:
            if not policy_ok:
                raise ValidationError("run policies", "see the policy fields above")
            job = jobmod.make_job(self.values())
        except ValidationError as e:
            self.set_error(e.field, e.reason)
            self._focus_field(e.field)
            return
        if self.job is not None and job == self.job:
            self.dismiss(job.name)
            return
        self.saving = True
        self.query_one("#save", Button).label = "Saving…"
        self._save(job)

    def _focus_field(self, field: str) -> None:
        target = "schedule_time" if field == "schedule_type" else field
        for widget in self.query(f"#{target}"):
            widget.focus()

    @work(thread=True, group="save", exit_on_error=False)
    def _save(self, job: Job) -> None:
        engine = self.engine
        try:
            if self.job is None:
                engine.add_job(job)
            else:
                engine.replace_job(self.job.name, job)
        except ValidationError as e:
            self.post_message(SaveFailed(e.field, e.reason))
        except (UserError, OSError) as e:
            self.post_message(SaveFailed(None, str(e)))
        else:
            self.post_message(Saved(job.name))

    def on_saved(self, message: Saved) -> None:
        verb = "added" if self.job is None else "saved"
        status = self.job_status(message.name)
        nxt = status.next_run if status is not None else None
        self.app.notify(f"{message.name} {verb}" + (f"; next run {nxt:%a %H:%M:%S}" if nxt else "") + ".")
        self.dismiss(message.name)

    def on_save_failed(self, message: SaveFailed) -> None:
        self.saving = False
        self.query_one("#save", Button).label = "Save (ctrl+s)"
        if message.field in FIELDS:
            self.set_error(message.field, message.reason)
            self._focus_field(message.field)
        else:
            self.set_error("form", message.reason)
