"""Command palette commands for each job: "Run chatty now", "Edit quick", ... (ctrl+p)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from insect_console.screens.base import ConsoleScreen

JOB_COMMANDS = (
    ("Run {} now", "run_job", "Start a run now (r)"),
    ("Live output of {}", "open_output", "Watch its output (l)"),
    ("Edit {}", "open_form", "Change the job (e)"),
    ("Enable or disable {}", "toggle_job", "Flip enabled (space)"),
    ("History of {}", "open_history", "Past runs of this job (h)"),
    ("Kill the running {}", "kill_job", "End its process tree (k)"),
    ("Delete {}", "delete_job", "Remove the job from the config (d)"),
)


class JobCommands(Provider):
    def _commands(self):
        screen = self.screen
        if not isinstance(screen, ConsoleScreen):
            screen = next((s for s in reversed(self.app.screen_stack) if isinstance(s, ConsoleScreen)), None)
        if screen is None:
            return
        for name in self.app.engine.config.names():
            for title, method, help_text in JOB_COMMANDS:
                yield title.format(name), partial(getattr(screen, method), name), help_text

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            if title.startswith("Run "):
                yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
