"""Which file a process writes and fsyncs, read from `strace -f -y -ttt` of it and its threads.

`strace_argv(out)` is put before a command (the daemon, `list`); `read_trace(out)` gives one
`Call` per write, fsync or rename with its thread, wall-clock time, file and result. strace
slows the traced process down, so figures that count calls use it and figures that time do not.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

CALLS = ("write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync", "sync_file_range", "rename", "renameat", "renameat2")
WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2"}
SYNCS = {"fsync", "fdatasync", "sync_file_range"}
RENAMES = {"rename", "renameat", "renameat2"}


def strace_missing() -> str | None:
    """Why calls can't be counted here, or None."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace)"
    return None


def strace_argv(out: Path) -> list[str]:
    return ["strace", "-f", "-qq", "-y", "-ttt", "-e", f"trace={','.join(CALLS)}", "-e", "signal=none", "-o", str(out), "--"]


@dataclass
class Call:
    tid: int
    when: float  # wall clock (time.time())
    name: str  # write, fsync, rename, ...
    path: str  # the file (fd's path from -y; for a rename, its new name); "pipe:[…]", "socket:[…]" as strace shows them
    result: int  # bytes written, 0 for a sync, -1 for a failure


_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_FD_PATH = re.compile(r"^\d+<(.*?)>(?:,|\)| <unfinished)")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _target(name: str, args: str) -> str:
    if name in RENAMES:
        quoted = _QUOTED.findall(args)
        return quoted[-1] if quoted else "?"
    m = _FD_PATH.match(args)
    return m[1] if m else "?"


def _result(rest: str) -> int:
    m = _RESULT.search(rest)
    if not m:
        return -1
    value = int(m[1])
    return value if value >= 0 else -1


def read_trace(path: Path) -> list[Call]:
    calls: list[Call] = []
    pending: dict[int, tuple[float, str, str]] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return calls
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        tid, when, rest = int(m[1]), float(m[2]), m[3]
        resumed = _RESUMED.match(rest)
        if resumed:
            started = pending.pop(tid, None)
            if started is not None:
                calls.append(Call(tid, started[0], started[1], started[2], _result(resumed[2])))
            continue
        c = _CALL.match(rest)
        if not c or c[1] not in CALLS:
            continue
        name, args = c[1], c[2]
        target = _target(name, args)
        if rest.endswith("<unfinished ...>"):
            pending[tid] = (when, name, target)
            continue
        calls.append(Call(tid, when, name, target, _result(args)))
    return calls
