"""Errors a user can cause. They are printed as one line, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input, a config file or the environment; `exit_code` is the CLI's."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ValidationError(UserError):
    """A job field or setting that does not have an accepted form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ConfigError(UserError):
    """A config file that can't be read, parsed or validated; it is never rewritten."""


class JobNotFound(UserError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no job named {name!r} (see `insect-console list`)")
        self.name = name


class AlreadyRunning(UserError):
    """A job's run lock is held by another run (here or in another process)."""

    exit_code = 75


class SchedulerRunning(UserError):
    """Another scheduler holds this config; two would run every job twice."""

    def __init__(self, config_path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"a scheduler is already running for {config_path} ({who}); stop it first")
        self.pid = pid


class DaemonGone(UserError):
    """The daemon closed the connection (it stopped or crashed), or never answered."""
