"""A warm fork server for the CLI's table tests: `cli_forked` runs like `helpers.cli`, faster.

Every `cli_forked` call is a real process of its own (forked from a server that has already
imported insect_console.cli), with its own cwd, environment, stdin from /dev/null and stdout /
stderr on files, running exactly what `python -m insect_console ARGS` runs: sys.exit(main(ARGS)),
tracebacks and exit codes included. It only skips the ~0.25 s interpreter start and imports,
which keeps the long tables of error cases fast. The happy paths use `helpers.cli` (`python -m`).

The server is started on first use and ended by `stop_cli_server()`, which the engine suite's
conftest calls at the end of the session. Nothing here imports pytest.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from helpers import CONFIG_REL, PY, TAG_ENV

_SERVER_CODE = r"""
import importlib, json, os, sys
import insect_console.cli as cli_module
for name in ("engine", "daemon", "integrations", "history", "config", "jobs", "state", "control", "notify"):
    try:  # what the commands import lazily
        importlib.import_module("insect_console." + name)
    except ImportError:
        pass

def reply(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())

for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["stdout"], os.O_WRONLY), (2, req["stderr"], os.O_WRONLY)):
            new = os.open(path, flags)
            os.dup2(new, fd)
            os.close(new)
        sys.exit(cli_module.main(req["argv"]))
    reply({"pid": pid})
    reply({"code": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])})
"""


class _ForkServer:
    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != TAG_ENV}
        self.proc = subprocess.Popen([PY, "-c", _SERVER_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     start_new_session=True, cwd="/")
        self._buf = b""

    def _read_reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise RuntimeError("the CLI fork server died")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, cwd: Path, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        out_dir = Path(tempfile.mkdtemp(prefix="insect-cli-"))
        try:
            stdout, stderr = out_dir / "stdout", out_dir / "stderr"
            stdout.touch()
            stderr.touch()
            request = {"cwd": str(cwd), "argv": argv, "env": env, "stdout": str(stdout), "stderr": str(stderr)}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            pid = self._read_reply(30)["pid"]
            try:
                code = self._read_reply(timeout)["code"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._read_reply(30)
                raise subprocess.TimeoutExpired(argv, timeout) from None
            return subprocess.CompletedProcess(argv, code, stdout.read_text(errors="replace"), stderr.read_text(errors="replace"))
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_server: _ForkServer | None = None


def cli_forked(cwd: Path, *args: str, config: str | None = CONFIG_REL, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Like `cli`, in a process forked from a warm server (see above)."""
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _ForkServer()
    argv = (["-c", config] if config is not None else []) + list(args)
    full_env = dict(os.environ)
    full_env.update(env or {})
    return _server.run(cwd, argv, full_env, timeout)


def stop_cli_server() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None
