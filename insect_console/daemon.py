"""The headless daemon (`scheduler --no-ui`): the engine plus signals and logging, for systemd."""

from __future__ import annotations

import logging
import signal

from insect_console.engine import Engine

log = logging.getLogger("insect_console.daemon")


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
    engine.start()
    try:
        engine.wait_stopped()
    finally:
        engine.stop()
    return 0
