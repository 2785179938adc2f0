"""Failure-streak notifications: logged, sent as engine events, and handed to a notify command.

Once per streak when a job has failed `failure_threshold` times in a row, and one "recovered"
notice when it next succeeds.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from typing import Any

from insect_console.events import Notification

log = logging.getLogger("insect_console.notify")

FAILURE_STATUSES = ("error", "timeout")


def next_streak(previous: int, status: str) -> int:
    """The failure count after a run: failures add one, a success resets, other statuses keep it."""
    if status in FAILURE_STATUSES:
        return previous + 1
    if status == "success":
        return 0
    return previous


def notification_for(job_name: str, previous: int, current: int, threshold: int, record: dict[str, Any]) -> Notification | None:
    status = record["status"]
    if current >= threshold > previous:
        return Notification(
            job_name=job_name,
            kind="failing",
            message=f"{job_name} failed {current} times in a row (last: {status}: {record.get('error') or ''})".rstrip(": )") + ")",
            failures=current,
            status=status,
            output_file=record.get("output_file"),
        )
    if status == "success" and previous >= threshold:
        return Notification(job_name, "recovered", f"{job_name} recovered after {previous} failures", 0, status, record.get("output_file"))
    return None


def deliver(note: Notification, notify_command: str, cwd: str | None = None) -> threading.Thread | None:
    """Log the notification and run the notify command (if any) on a thread of its own."""
    if note.kind == "failing":
        log.error("NOTIFY %s", note.message)
    else:
        log.warning("NOTIFY %s", note.message)
    if not notify_command.strip():
        return None
    env = dict(os.environ)
    env.update(
        INSECT_EVENT=note.kind,
        INSECT_JOB=note.job_name,
        INSECT_STATUS=note.status,
        INSECT_FAILURES=str(note.failures),
        INSECT_OUTPUT_FILE=note.output_file or "",
        INSECT_MESSAGE=note.message,
    )

    def run() -> None:
        try:
            argv = shlex.split(notify_command)
            done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            if done.returncode != 0:
                log.error("notify command exited %s: %s", done.returncode, done.stderr.decode(errors="replace").strip()[-300:])
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            log.error("notify command failed: %s", e)

    thread = threading.Thread(target=run, name="notify", daemon=True)
    thread.start()
    return thread
