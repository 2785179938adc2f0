"""`insect-console serve`: the console in a browser (a phone's, say), through textual-serve.

Each browser session runs its own `insect-console -c CONFIG --attach-only`: a console attached
to the daemon, which never starts a scheduler of its own (two would run every job twice). So
serve refuses to start when no daemon answers, and a session whose daemon goes away offers to
reconnect, never to schedule.

There is no authentication in front of it: it listens on 127.0.0.1 unless told otherwise
(reach it from elsewhere with `ssh -L 8000:127.0.0.1:8000 station`, so ssh does the access
control), and another address needs `--public`, which says so on stderr. textual-serve (and
the rich and aiohttp it brings) is imported only here, only by this command: `list` and the
daemon stay light.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import sys
from pathlib import Path

from insect_console.config import ConfigStore
from insect_console.control import ControlClient, socket_path
from insect_console.errors import DaemonGone, UserError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(address: str) -> bool:
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def session_command(store: ConfigStore) -> str:
    """What each browser session runs: this insect-console, attached to the config's daemon only."""
    return shlex.join([sys.executable, "-m", "insect_console", "-c", str(store.path), "--attach-only"])


def check_daemon(store: ConfigStore) -> int:
    """The pid of the daemon scheduling the config; UserError when none answers."""
    why = "nothing listens on its control socket"
    try:
        client = ControlClient(socket_path(store.runtime_dir), timeout=10)
    except DaemonGone:
        client = None
    if client is not None:
        try:
            return int(client.call("status")["pid"])
        except DaemonGone as e:
            why = str(e)
        finally:
            client.close()
    raise UserError(f"no daemon is running for {store.display_path} ({why}); serve opens consoles attached to the daemon only, "
                    "so that a browser session never starts a second scheduler: start the daemon first (`insect-console scheduler --no-ui` or its systemd unit)")


def check_port(bind: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port from 1 to 65535")
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind, port))
        except OSError as e:
            raise UserError(f"can't listen on {bind}:{port}: {e.strerror}") from None


def serve(config: str, port: int, bind: str, public: bool) -> int:
    """Serve the console of `config` on http://bind:port until interrupted."""
    if not is_loopback(bind) and not public:
        raise UserError(f"--bind {bind}: not a loopback address, and there is no authentication in front of the console; "
                        f"add --public to mean it, or keep 127.0.0.1 and reach it with ssh -L {port}:127.0.0.1:{port} STATION")
    store = ConfigStore(config)
    if not store.path.exists():
        raise UserError(f"{store.display_path}: no such config file")
    pid = check_daemon(store)
    check_port(bind, port)
    if not is_loopback(bind):
        print(f"insect-console: serving on {bind}:{port} with NO authentication in front of it: anyone who reaches this port "
              "can run, kill and change the station's jobs", file=sys.stderr, flush=True)
    from textual_serve.server import Server  # only here: it brings aiohttp and rich

    class _Server(Server):
        async def handle_index(self, request):  # the page's own address, so `ssh -L 9000:…:8000` works too
            self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

    title = f"insect-console · {Path(store.display_path).name} · daemon pid {pid}"
    _Server(session_command(store), host=bind, port=port, title=title).serve()
    return 0
