"""The headless daemon (`scheduler --no-ui`): the engine plus signals and logging, for systemd.

Under systemd (`Type=notify`) it tells the service manager READY=1 once it schedules, STATUS=
as runs start and end, WATCHDOG=1 from the scheduling loop itself (so a hung loop stops the
pings and systemd restarts the service), RELOADING=1 / READY=1 around a reload and STOPPING=1.
"""

from __future__ import annotations

import logging
import resource
import signal

from insect_console import sdnotify
from insect_console.engine import Engine
from insect_console.events import ConfigReloaded
from insect_console.operations import Operations

log = logging.getLogger("insect_console.daemon")


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE to the hard one (systemd starts services at 1024), so runs,
    their pipes and files and the control clients never compete for a few descriptors.
    Returns (old, new) when it was raised."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard
        if hard == resource.RLIM_INFINITY:
            with open("/proc/sys/fs/nr_open") as f:  # the most the kernel allows a process
                target = int(f.read())
        if soft != resource.RLIM_INFINITY and soft >= target:
            return None
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return soft, target
    except (OSError, ValueError):
        return None


def run_daemon(engine: Engine) -> int:
    """Run the scheduler until SIGINT or SIGTERM; SIGHUP reloads the config. Returns the exit code."""
    notifier = sdnotify.from_environment()
    ops = Operations(engine, notifier=notifier if notifier.enabled else None)
    if engine.settings.metrics_file.strip():
        import prometheus_client  # noqa: F401 - imported before scheduling starts, not beside a run

    if notifier.watchdog_interval is not None:
        engine.max_sleep = min(engine.max_sleep, notifier.watchdog_interval / 2)
        log.info("systemd watchdog: %g s; the scheduling loop pings it", notifier.watchdog_interval)

        def heartbeat() -> None:
            notifier.watchdog()
            ops.beat()

        engine.heartbeat = heartbeat
    else:
        engine.heartbeat = ops.beat

    def on_stop(signum, _frame) -> None:
        log.info("%s received: stopping (running jobs get %s s)", signal.Signals(signum).name, engine.settings.shutdown_grace)
        notifier.stopping()
        engine.request_stop()

    def on_hup(_signum, _frame) -> None:
        log.info("SIGHUP received: reloading the config")
        notifier.reloading()
        engine.request_reload()

    def on_event(event) -> None:
        if isinstance(event, ConfigReloaded):
            notifier.ready(f"config not reloaded: {event.error}"[:200] if event.error else None)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    raised = raise_open_files_limit()
    if raised:
        log.info("open-files limit raised from %d to %d", *raised)
    unsubscribe = engine.subscribe(on_event) if notifier.enabled else (lambda: None)
    try:
        engine.start()
        notifier.ready(f"scheduling {len(engine.config.jobs)} jobs")
        try:
            engine.wait_stopped()
        finally:
            notifier.stopping()
            engine.stop()
    finally:
        unsubscribe()
        ops.close()
        notifier.close()
    return 0
