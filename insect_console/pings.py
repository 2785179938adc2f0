"""Healthchecks pings (https://healthchecks.io, or a self-hosted instance) for each run.

`<url>/start` when a run starts; at its end `<url>` on success, `<url>/<exit code>` for an
exit status 1-255, `<url>/fail` otherwise (timeout, killed, command not found, interrupted).
The end ping's POST body is the tail of the run's output (at most 10 kB); every ping carries
the run's id as `rid` (Healthchecks wants a UUID there, so it is a UUID made from the run id:
the start and end pings of a run carry the same one).

Pings go out from one background thread with a short timeout, a bounded queue and a few
retries: a dead network never delays or fails a run. A ping that can't be sent is logged once
per outage, and the URL in a log line never shows its secret part (see `redact`).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from insect_console import __version__
from insect_console.fileio import Outage

log = logging.getLogger("insect_console.pings")

TIMEOUT = 5.0
"""Seconds one attempt may take (connect + answer)."""
ATTEMPTS = 3
RETRY_DELAYS = (1.0, 2.0)
QUEUE_SIZE = 100
BODY_BYTES = 10_000
FLUSH_SECONDS = 5.0
"""How long closing waits for pings still queued (the daemon's stop, the end of run-job)."""

_ACTIONS = {"start", "fail", "log"}
_SLUG_RE = re.compile(r"[a-z0-9_-]{1,100}")


def redact(url: str) -> str:
    """`url` with its secret part hidden: the check's uuid or the project's ping key, and any
    user, password or query. Scheme, host and port stay, and so do what a ping URL adds after
    the secret (`start`, `fail`, an exit code) and a self-hosted instance's `ping` prefix:

    https://hc-ping.com/0f7c.../start -> https://hc-ping.com/…/start
    https://hc-ping.com/KEY/backup/3  -> https://hc-ping.com/…/…/3
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme or not host:
        return "…"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    segments = parts.path.split("/")[1:] if parts.path else []
    shown = []
    for i, segment in enumerate(segments):
        if not segment:
            shown.append(segment)
        elif i == 0 and segment == "ping" and len(segments) > 1:
            shown.append(segment)  # a self-hosted Healthchecks serves pings under /ping/
        elif i == len(segments) - 1 and i > 0 and (segment in _ACTIONS or (segment.isdigit() and len(segment) <= 3)):
            shown.append(segment)
        else:
            shown.append("…")
    path = "/" + "/".join(shown) if segments else ""
    return f"{parts.scheme}://{netloc}{path}" + ("?…" if parts.query else "")


def validate_url(value: Any, field: str) -> str:
    """An http(s) URL with a host, no spaces; ValidationError otherwise (no secret in the message)."""
    from insect_console.errors import ValidationError

    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "is empty; give an http(s) URL such as https://hc-ping.com/<uuid>")
    text = value.strip()
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok or any(c.isspace() or not c.isprintable() for c in text):
        raise ValidationError(field, f"{redact(text)!r} is not an http(s) URL such as https://hc-ping.com/<uuid>")
    if parts.query or parts.fragment:
        raise ValidationError(field, "must not have a ?query or #fragment (the run id is added as ?rid=)")
    return text.rstrip("/")


def validate_slug(value: Any) -> str:
    from insect_console.errors import ValidationError

    if not isinstance(value, str) or not _SLUG_RE.fullmatch(value):
        raise ValidationError("ping_slug", f"{value!r} is not a Healthchecks slug: 1-100 of a-z, 0-9, - and _")
    return value


def check_url(job: Any, ping_base: str) -> str | None:
    """The ping URL of `job` (its ping_url, or ping_base/ping_slug), or None when it has none."""
    if getattr(job, "ping_url", None):
        return job.ping_url
    slug = getattr(job, "ping_slug", None)
    if slug and ping_base:
        return f"{ping_base.rstrip('/')}/{slug}"
    return None


def end_suffix(record: dict[str, Any]) -> str:
    """What the end ping adds to the check's URL for this record ('' for a success)."""
    status = record.get("status")
    if status == "success":
        return ""
    code = record.get("exit_code")
    if status == "error" and isinstance(code, int) and 0 < code <= 255:
        return f"/{code}"
    return "/fail"


def end_body(record: dict[str, Any], limit: int = BODY_BYTES) -> bytes:
    """The last `limit` bytes of the run's output, then the error line (a failure's reason)."""
    text = record.get("output") or ""
    if record.get("error"):
        text = (text if not text or text.endswith("\n") else text + "\n") + str(record["error"]) + "\n"
    data = text.encode("utf-8", "replace")
    if len(data) > limit:
        data = data[-limit:]
        while data and (data[0] & 0xC0) == 0x80:  # don't start inside a UTF-8 sequence
            data = data[1:]
    return data


def rid_for(run_id: str) -> str:
    """The UUID sent as `rid` for a run: the same for its start and its end."""
    import uuid  # imported here: only stations that ping need it

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"insect-console:run:{run_id}"))


@dataclass(frozen=True)
class Ping:
    job_name: str
    url: str
    body: bytes = b""


class Pinger:
    """One sender thread (started at the first ping), a bounded queue, a few retries."""

    def __init__(self, timeout: float = TIMEOUT, attempts: int = ATTEMPTS, retry_delays: tuple[float, ...] = RETRY_DELAYS, queue_size: int = QUEUE_SIZE) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delays = retry_delays
        self._queue: queue.Queue[Ping | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._outage = Outage()
        self._overflow = Outage()
        self.sent = 0
        self.dropped = 0

    def send(self, job_name: str, url: str, body: bytes = b"") -> bool:
        """Queue a ping; never blocks. False when the queue is full (the ping is dropped)."""
        if self._closing.is_set():
            return False
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="pings", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(Ping(job_name, url, body))
        except queue.Full:
            self.dropped += 1
            if self._overflow.failed():
                log.error("%s: ping to %s dropped: %d pings are already waiting to be sent", job_name, redact(url), self._queue.maxsize)
            return False
        self._overflow.worked()
        return True

    def run_started(self, job_name: str, url: str, run_id: str) -> bool:
        return self.send(job_name, f"{url}/start?rid={rid_for(run_id)}")

    def run_finished(self, job_name: str, url: str, run_id: str | None, record: dict[str, Any]) -> bool:
        target = url + end_suffix(record) + (f"?rid={rid_for(run_id)}" if run_id else "")
        return self.send(job_name, target, end_body(record))

    def close(self, wait: float = FLUSH_SECONDS) -> None:
        """Send what is queued for at most `wait` seconds, then stop the thread."""
        self._deadline = time.monotonic() + wait
        self._closing.set()
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        thread.join(wait + self.timeout + 1)
        left = self._queue.qsize()
        if left:
            log.warning("%d ping(s) not sent: the scheduler stopped before they could be", left)

    # -- the sender thread ------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._closing.is_set() and time.monotonic() >= self._deadline:
                return
            self._deliver(item)
        while time.monotonic() < self._deadline:  # closing: what is still queued, until the deadline
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._deliver(item)

    def _deliver(self, ping: Ping) -> None:
        error = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)]
                if self._closing.is_set() and time.monotonic() + delay >= self._deadline:
                    break
                time.sleep(delay)
            status, error = self._post(ping)
            if status is not None and status < 400:
                self.sent += 1
                if self._outage.worked():
                    log.warning("pings get through again (%s)", redact(ping.url))
                return
            if status is not None and 400 <= status < 500 and status != 429:
                # the check's URL is wrong (404: no such check): retrying won't help, nor is it an outage
                log.error("%s: Healthchecks refused the ping to %s: %s", ping.job_name, redact(ping.url), error)
                return
        if self._outage.failed():
            log.error("can't send pings (%s to %s: %s); runs go on, pings are dropped until they get through",
                      ping.job_name, redact(ping.url), error)

    def _post(self, ping: Ping) -> tuple[int | None, str]:
        """POST the ping once: (HTTP status or None when there was no answer, error text)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(ping.url, data=ping.body, method="POST",
                                         headers={"User-Agent": f"insect-console/{__version__}", "Content-Type": "text/plain; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(1024)
                return response.status, ""
        except urllib.error.HTTPError as e:
            return e.code, f"HTTP {e.code} {e.reason}"
        except urllib.error.URLError as e:
            reason = e.reason
            return None, getattr(reason, "strerror", None) or str(reason)
        except OSError as e:  # timeouts, resets
            return None, getattr(e, "strerror", None) or str(e) or type(e).__name__
        except ValueError as e:  # a URL urllib can't use; its message would show the URL
            return None, type(e).__name__
