"""The headless daemon (`scheduler --no-ui`): the engine plus signals and logging, for systemd."""

from __future__ import annotations

import logging
import resource
import signal

from insect_console.engine import Engine

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

    def on_stop(signum, _frame) -> None:
        log.info("%s received: stopping (running jobs get %s s)", signal.Signals(signum).name, engine.settings.shutdown_grace)
        engine.request_stop()

    def on_hup(_signum, _frame) -> None:
        log.info("SIGHUP received: reloading the config")
        engine.request_reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    raised = raise_open_files_limit()
    if raised:
        log.info("open-files limit raised from %d to %d", *raised)
    engine.start()
    try:
        engine.wait_stopped()
    finally:
        engine.stop()
    return 0
