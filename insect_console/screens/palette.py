"""Command palette commands for each job: "Run chatty now", "Edit quick", ... (ctrl+p).

Each posts the same `Command` the keys post, so the palette runs exactly what a key runs.
"""

from __future__ import annotations

from textual.command import DiscoveryHit, Hit, Hits, Provider

from insect_console.screens.base import Command

JOB_COMMANDS = (
    ("Run {} now", "run", "Start a run now (r)"),
    ("Live output of {}", "output", "Watch its output (l)"),
    ("Edit {}", "edit", "Change the job (e)"),
    ("Enable or disable {}", "toggle", "Flip enabled (space)"),
    ("History of {}", "history", "Past runs of this job (h)"),
    ("Kill the running {}", "kill", "End its process tree (k)"),
    ("Delete {}", "delete", "Remove the job from the config (d)"),
)


class JobCommands(Provider):
    def _commands(self):
        for name in self.app.engine.config.names():
            for title, action, help_text in JOB_COMMANDS:
                yield title.format(name), (lambda a=action, n=name: self.app.post_message(Command(a, n))), help_text

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
