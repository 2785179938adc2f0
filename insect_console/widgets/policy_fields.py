"""The run-policy part of the add/edit form: retries, catch-up, conditions, chain, group.

A widget of inputs that holds a job's `RunPolicy` and gives back the fields `make_job` takes;
every value is checked as you type by the engine's own validator (`policies.parse`), and the
first refusal is shown under the block.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static

from insect_console.errors import ValidationError
from insect_console.policies import AFTER_STATUS, CATCH_UP, RunPolicy, parse, require_from_items
from insect_console.widgets.cells import tone

_SPLIT = re.compile(r"[,\s]+")


class PolicyFields(Vertical):
    DEFAULT_CSS = "PolicyFields { height: auto; }"

    def __init__(self, policy: RunPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    def compose(self) -> ComposeResult:
        p = self.policy
        thresholds = {k: v for k, v in p.require.items() if k != "command"}
        yield Static(Text("empty: the default", style="dim"), classes="form-section")
        with Horizontal(classes="field"):
            yield Label("Retries", classes="field-label")
            yield Input(str(p.retries) if p.retries else "", placeholder="0", id="p-retries", compact=True, classes="short")
            yield Label("delay", classes="inline-label")
            yield Input(p.retry_delay if p.retry_delay != RunPolicy.retry_delay else "", placeholder="1m", id="p-retry_delay", compact=True, classes="short")
            yield Label("×", classes="inline-label")
            yield Input(f"{p.retry_backoff:g}" if p.retry_backoff != RunPolicy.retry_backoff else "", placeholder="2", id="p-retry_backoff", compact=True, classes="short")
            yield Label("max", classes="inline-label")
            yield Input(p.retry_max_delay if p.retry_max_delay != RunPolicy.retry_max_delay else "", placeholder="30m", id="p-retry_max_delay", compact=True, classes="short")
        with Horizontal(classes="field"):
            yield Label("Catch-up", classes="field-label")
            yield Select([("by type", "")] + [(c, c) for c in CATCH_UP], value=p.catch_up or "", allow_blank=False, id="p-catch_up", compact=True)
            yield Label("max age", classes="inline-label")
            yield Input(p.catch_up_max_age if p.catch_up_max_age != RunPolicy.catch_up_max_age else "", placeholder="24h", id="p-catch_up_max_age", compact=True, classes="short")
        with Horizontal(classes="field"):
            yield Label("Requires", classes="field-label")
            yield Input(" ".join(f"{k}={v}" for k, v in thresholds.items()), placeholder="disk_free_mb=500 min_battery_pct=30", id="p-require", compact=True)
            yield Label("wait", classes="inline-label")
            yield Input(p.require_wait if p.require_wait != RunPolicy.require_wait else "", placeholder="30m", id="p-require_wait", compact=True, classes="short")
        with Horizontal(classes="field"):
            yield Label("Check cmd", classes="field-label")
            yield Input(p.require.get("command", ""), placeholder="test -e /dev/video0 (run through /bin/sh)", id="p-command", compact=True)
        with Horizontal(classes="field"):
            yield Label("After", classes="field-label")
            yield Input(", ".join(p.after), placeholder="jobs it follows, e.g. detection", id="p-after", compact=True)
            yield Label("on", classes="inline-label")
            yield Select([(s, s) for s in AFTER_STATUS], value=p.after_status, allow_blank=False, id="p-after_status", compact=True)
        with Horizontal(classes="field"):
            yield Label("Group", classes="field-label")
            yield Input(p.group or "", placeholder="one run of a group at a time, e.g. camera", id="p-group", compact=True)
        yield Static("", id="err-policy", classes="field-error")

    def values(self) -> dict[str, Any]:
        """The policy fields as `make_job` takes them (empty inputs: the defaults)."""
        def text(name: str) -> str:
            return self.query_one(f"#p-{name}", Input).value.strip()

        data: dict[str, Any] = {}
        for name in ("retry_delay", "retry_max_delay", "catch_up_max_age", "require_wait"):
            if text(name):
                data[name] = text(name)
        for name, kind in (("retries", int), ("retry_backoff", float)):
            if text(name):
                try:
                    data[name] = kind(text(name))
                except ValueError:
                    data[name] = text(name)  # refused by the validator with the field's own message
        if isinstance(data.get("retry_backoff"), float) and data["retry_backoff"].is_integer():
            data["retry_backoff"] = int(data["retry_backoff"])
        catch_up = self.query_one("#p-catch_up", Select).value
        if catch_up:
            data["catch_up"] = catch_up
        require = require_from_items(shlex.split(text("require"))) if text("require") else {}
        if text("command"):
            require["command"] = text("command")
        if require:
            data["require"] = require
        if text("after"):
            data["after"] = [n for n in _SPLIT.split(text("after")) if n]
        data["after_status"] = self.query_one("#p-after_status", Select).value
        if text("group"):
            data["group"] = text("group")
        return data

    def check(self) -> bool:
        """Check the fields with the engine's validator; show the first refusal."""
        error = self.query_one("#err-policy", Static)
        try:
            parse(self.values())
        except ValidationError as e:
            error.update(Text(f"✗ {e}", style=tone("bold red")))
            error.set_class(True, "-error")
            return False
        error.update("")
        error.set_class(False, "-error")
        return True

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event) -> None:
        event.stop()
        self.check()
