"""After a crash: runs whose scheduler died mid-run get their record, and their leftovers end.

A run is entered in the state's `running` table before its process exists, with the identity
(pid + create time) of the process that owns it. At the next start, an entry whose owner is gone
is a run cut off by a crash, a kill or a power cut: it is recorded as `interrupted` (with the
tail of its output file), and any of its processes still alive, found by their run marker, are
ended.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from insect_console import proctree, records
from insect_console.history import HistoryWriter
from insect_console.runoutput import tail_text
from insect_console.state import StateStore

log = logging.getLogger("insect_console.engine")


def _orphaned(entry: dict[str, Any]) -> bool:
    return not proctree.is_same_process(entry.get("owner_pid"), entry.get("owner_create_time"))


def recover_interrupted(state: StateStore, history: HistoryWriter, *, kill_grace: float, tail_bytes: int) -> list[records.Record]:
    """Record every orphaned run as `interrupted` and end its leftover processes."""
    if not any(_orphaned(e) for e in state.read()["running"].values()):
        return []  # the usual case: nothing to write
    stale: list[tuple[str, dict[str, Any]]] = []

    def take(current: dict[str, Any]) -> None:
        for run_id, entry in list(current["running"].items()):
            if _orphaned(entry):
                stale.append((run_id, current["running"].pop(run_id)))

    state.try_update(take)
    found = []
    for run_id, entry in stale:
        survivors = proctree.run_processes(run_id, entry.get("pid"), entry.get("create_time"))
        if survivors:
            log.warning("%s: ending %d leftover process(es) of interrupted run %s", entry.get("job_name"), len(survivors), run_id)
            proctree.end_run(run_id, entry.get("pid"), kill_grace, entry.get("create_time"))
        output_file = entry.get("output_file")
        record = records.interrupted(
            entry, run_id, at=dt.datetime.now(), output=tail_text(output_file, tail_bytes),
            output_file=output_file if output_file and os.path.exists(output_file) else None,
        )
        history.append(record)

        def mark(current: dict[str, Any], name=record["job_name"], when=record["start_time"]) -> None:
            current["jobs"].setdefault(name, {}).update(last_run=when, last_status="interrupted")

        state.try_update(mark)
        log.warning("%s: run %s recorded as interrupted", record["job_name"], run_id)
        found.append(record)
    return found
