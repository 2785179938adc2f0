"""Runs asked for but not started yet: retries, catch-ups, runs after another job (chains), and
runs waiting for their conditions or for their group.

Each is an `Intent`: which job, why (its trigger), the due time it stands for, not before when,
which attempt, and since when and why it waits. They are kept in the state file's `pending`
table, so a daemon killed during a retry delay or a deferred wait resumes it at its next start:
nothing is lost, and nothing runs twice (a pending intent holds its due time; catch-up leaves
due times that are already pending alone).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any, Mapping

from insect_console.state import StateStore
from insect_console.textfmt import parse_local


@dataclass
class Intent:
    job_name: str
    trigger: str
    """schedule | catch-up | retry | manual | after:NAME"""
    due: dt.datetime
    """The due time the run stands for (naive local)."""
    not_before: dt.datetime
    attempt: int = 1
    waiting_since: dt.datetime | None = None
    """Set once the run has been deferred by its conditions or its group."""
    reason: str | None = None
    """Why it waits, in words ("battery 22 % < 30 %")."""
    blocked: bool = False
    """It waits for a run to end (its own, or one of its group's), not for its conditions."""

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.job_name, self.trigger, self.due)

    def to_state(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("due", "not_before", "waiting_since"):
            out[name] = out[name].isoformat(timespec="milliseconds") if out[name] else None
        return out

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> "Intent | None":
        due, not_before = parse_local(data.get("due")), parse_local(data.get("not_before"))
        if not isinstance(data.get("job_name"), str) or not isinstance(data.get("trigger"), str) or due is None or not_before is None:
            return None
        attempt = data.get("attempt")
        return cls(data["job_name"], data["trigger"], due, not_before, attempt if isinstance(attempt, int) and attempt > 0 else 1,
                   parse_local(data.get("waiting_since")), data.get("reason") if isinstance(data.get("reason"), str) else None,
                   data.get("blocked") is True)

    def describe(self) -> str:
        """What the console shows for a job with this intent pending."""
        if self.reason:
            return self.reason
        if self.trigger == "retry":
            return f"retry {self.attempt} at {self.not_before:%H:%M:%S}"
        return f"{self.trigger} run due"


class RunQueue:
    """The pending intents of one engine, persisted in its state file on every change."""

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._intents: dict[tuple[str, str, dt.datetime], Intent] = {}

    def load(self) -> list[Intent]:
        """The intents a previous run of the scheduler left (its kill -9 or power cut)."""
        raw = self._state.read().get("pending", {})
        loaded = [i for entries in raw.values() if isinstance(entries, list) for e in entries if isinstance(e, Mapping)
                  if (i := Intent.from_state(e)) is not None] if isinstance(raw, Mapping) else []
        with self._lock:
            self._intents = {i.key: i for i in loaded}
        return loaded

    def put(self, *intents: Intent) -> None:
        if not intents:
            return
        with self._lock:
            for intent in intents:
                self._intents[intent.key] = intent
        self._save()

    def take(self, until: dt.datetime, job_name: str | None = None) -> list[Intent]:
        """Remove and return the intents due by `until` (all of `job_name`'s when given), in order."""
        with self._lock:
            taken = [i for i in self._intents.values() if (i.job_name == job_name if job_name else i.not_before <= until)]
            for intent in taken:
                del self._intents[intent.key]
        if taken:
            self._save()
        return sorted(taken, key=lambda i: (i.not_before, i.due))

    def hurry(self, job_names: set[str], now: dt.datetime) -> bool:
        """The intents of `job_names` that wait for a run to end are due `now` (one just ended)."""
        with self._lock:
            waiting = [i for i in self._intents.values() if i.blocked and i.job_name in job_names]
            for intent in waiting:
                intent.not_before = min(intent.not_before, now)
        return bool(waiting)

    def drop(self, keep: set[str]) -> None:
        """Forget the intents of jobs that are gone (or disabled)."""
        with self._lock:
            gone = [k for k, i in self._intents.items() if i.job_name not in keep]
            for key in gone:
                del self._intents[key]
        if gone:
            self._save()

    def next_time(self) -> dt.datetime | None:
        with self._lock:
            return min((i.not_before for i in self._intents.values()), default=None)

    def of(self, job_name: str) -> list[Intent]:
        with self._lock:
            return sorted((i for i in self._intents.values() if i.job_name == job_name), key=lambda i: (i.due, i.not_before))

    def __contains__(self, key: tuple[str, dt.datetime]) -> bool:
        """Whether a run of `job_name` for `due` is pending, whatever its trigger."""
        with self._lock:
            return any((i.job_name, i.due) == key for i in self._intents.values())

    def _save(self) -> None:
        with self._lock:
            table: dict[str, list[dict[str, Any]]] = {}
            for intent in sorted(self._intents.values(), key=lambda i: (i.due, i.not_before)):
                table.setdefault(intent.job_name, []).append(intent.to_state())
        self._state.try_update(lambda state: state.__setitem__("pending", table))
