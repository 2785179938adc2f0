"""The runs an engine owns, by job name: at most one per job, from dispatch to record.

A slot is claimed when a run is dispatched (before its process exists: a run prepared ahead of
its due instant already holds it) and released by its worker once the run is recorded. Stopping
waits here for the slots to empty, within the shutdown grace.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from insect_console.records import new_run_id
from insect_console.runner import JobRun
from insect_console.surface import ActiveRun


@dataclass
class RunSlot:
    """One run this engine owns (`run` is set once the run is made)."""

    job_name: str
    run_id: str
    trigger: str
    run: JobRun | None = None
    start_time: dt.datetime | None = None
    output_file: str | None = None
    killed: bool = False
    """Ended by the operator: not retried, not counted in the failure streak."""

    def view(self) -> ActiveRun:
        return ActiveRun(self.job_name, self.run_id, self.trigger, self.start_time, self.output_file, self.run.pid if self.run else None)


class RunSlots:
    def __init__(self) -> None:
        self._slots: dict[str, RunSlot] = {}
        self._idle = threading.Condition(threading.RLock())

    def claim(self, name: str, trigger: str, exclusive_with: list[str] = ()) -> tuple[RunSlot | None, RunSlot | None]:
        """A new slot for a run of `name`, or (None, the slot that holds it back): its own run
        in progress, or one of `exclusive_with` (the other jobs of its group)."""
        with self._idle:
            busy = self._slots.get(name) or next((self._slots[n] for n in exclusive_with if n in self._slots), None)
            if busy is not None:
                return None, busy
            slot = self._slots[name] = RunSlot(name, new_run_id(), trigger)
            return slot, None

    def release(self, slot: RunSlot) -> None:
        with self._idle:
            if self._slots.get(slot.job_name) is slot:
                del self._slots[slot.job_name]
            self._idle.notify_all()

    def get(self, name: str) -> RunSlot | None:
        with self._idle:
            return self._slots.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._slots

    def views(self) -> dict[str, ActiveRun]:
        with self._idle:
            return {name: slot.view() for name, slot in self._slots.items()}

    def wait_empty(self, grace: float) -> list[RunSlot]:
        """Wait up to `grace` seconds for every run to end; the slots still held then."""
        deadline = time.monotonic() + grace
        with self._idle:
            while self._slots and time.monotonic() < deadline:
                self._idle.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            return list(self._slots.values())

    def clear(self) -> None:
        with self._idle:
            self._slots.clear()
