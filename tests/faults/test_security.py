"""Files and commands that can't be hijacked: permissions, job names, cron and systemd quoting."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from insect_console.cli import main as cli_main

from .kit import (
    CLI_TIMEOUT,
    WAIT,
    CONFIG_REL,
    LOG_REL,
    Daemon,
    assert_one_line_error,
    cli,
    fast,
    job,
    note,
    state_path,
    strict_records,
    wait_for,
    write_config,
)

# -- permissions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o620, 0o602], ids=oct)
def test_group_or_world_writable_config_refused(tmp_path: Path, mode: int):
    config = write_config(tmp_path, [job("tick", "true")], settings=fast())
    os.chmod(config, mode)
    before = config.read_bytes()
    note(faults_injected=1)
    commands = (["list"], ["run-job", "tick"], ["add", "x", "true", "--type", "interval", "--time", "60"], ["scheduler", "--no-ui"])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda argv: cli(tmp_path, *argv, timeout=CLI_TIMEOUT), commands))
    for done in results:
        line = assert_one_line_error(done, "chmod 600", "batch_config.toml")
        assert "writable by group or others" in line
    assert config.read_bytes() == before
    assert stat.S_IMODE(config.stat().st_mode) == mode  # reported, not silently "fixed"
    assert not (tmp_path / LOG_REL).exists()


def test_group_writable_state_refused(tmp_path: Path):
    config = write_config(tmp_path, [job("tick", "true")], settings=fast())
    state = state_path(config)
    state.write_text('{"version": 1, "jobs": {}, "running": {}}')
    os.chmod(state, 0o664)
    note(faults_injected=1)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda argv: cli(tmp_path, *argv, timeout=CLI_TIMEOUT), (["list"], ["run-job", "tick"], ["scheduler", "--no-ui"])))
    for done in results:
        assert_one_line_error(done, "chmod 600", "state")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_config_owned_by_another_user_refused(tmp_path: Path):
    config = write_config(tmp_path, [job("tick", "true")], settings=fast())
    os.chown(config, 65534, 65534)
    note(faults_injected=1)
    line = assert_one_line_error(cli(tmp_path, "list", timeout=CLI_TIMEOUT), "batch_config.toml")
    assert "owned by uid 65534" in line and "chown" in line


def test_slipped_in_job_never_runs(tmp_path: Path):
    """Someone makes the config writable and adds a job while the daemon runs: it is refused."""
    config = write_config(tmp_path, [job("tick", "true", "interval", "1")], settings=fast())
    log_dir = tmp_path / LOG_REL
    daemon = Daemon(tmp_path).started()
    try:
        wait_for(lambda: strict_records(log_dir), timeout=WAIT, what="a first run")
        os.chmod(config, 0o666)
        with open(config, "a") as f:
            f.write('\n[[jobs]]\nname = "evil"\ncommand = "touch pwned"\nschedule_type = "interval"\nschedule_time = "1"\n')
        note(faults_injected=1)
        daemon.wait_log("chmod 600")
        n = len(strict_records(log_dir))
        wait_for(lambda: len(strict_records(log_dir)) >= n + 3, timeout=WAIT, what="the old jobs going on")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert not (tmp_path / "pwned").exists()
    assert {r["job_name"] for r in strict_records(log_dir)} == {"tick"}


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def test_created_files_are_private_even_with_umask_0(tmp_path: Path):
    assert cli(tmp_path, "list", umask=0, timeout=CLI_TIMEOUT).returncode == 0  # creates the config with the default jobs
    assert cli(tmp_path, "add", "tick", "echo hi", "--type", "interval", "--time", "1", umask=0, timeout=CLI_TIMEOUT).returncode == 0
    assert cli(tmp_path, "disable", "hourly_detection", umask=0, timeout=CLI_TIMEOUT).returncode == 0
    assert cli(tmp_path, "run-job", "tick", umask=0, timeout=CLI_TIMEOUT).returncode == 0
    daemon = Daemon(tmp_path, umask=0).started()
    try:
        wait_for(lambda: len(strict_records(tmp_path / LOG_REL)) >= 2, timeout=WAIT, what="a daemon run")
        during = _modes(tmp_path)  # the lock files and control socket exist only now
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    modes = {**during, **_modes(tmp_path)}
    assert modes[CONFIG_REL] == 0o600
    assert modes["config"] == 0o700
    assert modes["logs"] == 0o700 and modes[LOG_REL] == 0o700
    assert any(k.startswith(LOG_REL + "/batch_") for k in modes)
    assert any(k.endswith(".log") for k in modes) and any(k.endswith("state.json") for k in modes)
    loose = {k: oct(m) for k, m in modes.items() if m & 0o077}
    assert loose == {}, loose


def test_commands_run_as_argv_without_a_shell(tmp_path: Path):
    """Shell syntax inside quotes reaches the program as plain arguments; nothing is executed."""
    write_config(tmp_path, [job("argv", "printf '[%s]' 'a; touch pwned1' '$(touch pwned2)' '`touch pwned3`' '*' '~' '>x'")], settings=fast())
    done = cli(tmp_path, "run-job", "argv", timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    (record,) = strict_records(tmp_path / LOG_REL)
    assert record["output"] == "[a; touch pwned1][$(touch pwned2)][`touch pwned3`][*][~][>x]"
    assert not list(tmp_path.glob("pwned*")) and not (tmp_path / "x").exists()
    note(faults_injected=1, runs_recorded=1)


# -- job names ------------------------------------------------------------------------------------

BAD_NAMES = [
    "../x", "..", "a/b", "x/../../y", "/etc/passwd", ".hidden", "-rf", "a b", "tab\tx", "n" * 65, "", "é", "a\\b", "x\u2215y",
    "x\n",  # once made a two-line error: the raw name went into the message
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_hand_edited_bad_job_name_refused(tmp_path: Path, name: str, monkeypatch, capsys):
    write_config(tmp_path, [job(name, "touch escaped", "interval", "1")])  # as hand-edited: no CLI would write it
    note(faults_injected=1)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for argv in (["list"], ["run-job", name], ["cron", name]):
        rc, out, err = _cli_out(monkeypatch, capsys, tmp_path, *argv)
        assert rc == 2 and out == "", (argv, rc, out)
        assert len(err.strip().splitlines()) == 1 and "name" in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "escaped").exists()


def test_daemon_refuses_a_name_that_escapes(tmp_path: Path):
    write_config(tmp_path, [job("../../x", "touch escaped", "interval", "1")])
    assert_one_line_error(cli(tmp_path, "scheduler", "--no-ui", timeout=CLI_TIMEOUT), "name")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", ".."], ids=repr)
def test_cli_add_refuses_bad_names(tmp_path: Path, name: str, monkeypatch, capsys):
    config = write_config(tmp_path, [job("tick", "true")], settings=fast())
    before = config.read_bytes()
    for argv in (["add", name, "true", "--type", "interval", "--time", "60"], ["edit", "tick", "--rename", name]):
        rc, _out, err = _cli_out(monkeypatch, capsys, tmp_path, *argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "name" in err, err
    assert config.read_bytes() == before


# -- cron lines and systemd units --------------------------------------------------------------

WEIRD = [
    "sp ace",
    "quo'te",
    'dq"uote',
    "dol$HOME${x}",
    "pct%d%%",
    "semi;colon&&x|y",
    "back\\slash",
    "back\\%pct",  # cron can't hold a backslash before %: once produced a line that cron cut
    "tick`id`$(id)",
    "glob*?[x]~",
    "all 'of\" $it; %n \\ `x`",
]

FAKE_PY = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_OUT"], "w") as f:
    json.dump({{"argv": sys.argv, "cwd": os.getcwd()}}, f)
"""


def cron_unescape(command: str) -> tuple[str, str | None]:
    """What cron (cronie's do_command) hands to /bin/sh: `\\%` becomes `%`, an unescaped `%`
    ends the command (the rest is stdin). Returns (command, stdin or None)."""
    out, escaped = [], False
    for i, ch in enumerate(command):
        if escaped:
            escaped = False
            if ch == "%":
                out[-1] = "%"
                continue
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            return "".join(out), command[i + 1 :]
        out.append(ch)
    return "".join(out), None


def systemd_words(value: str) -> list[str]:
    """ExecStart= words as systemd makes them: unquote + C-unescape, then %-specifiers, then $."""
    words, i, n = [], 0, len(value)
    escapes = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "s": " "}
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        if i >= n:
            break
        word, quote = [], None
        while i < n and (quote or value[i] not in " \t"):
            ch = value[i]
            if ch == "\\":
                assert value[i + 1] in escapes, f"unexpected escape {value[i:i + 2]!r}"
                word.append(escapes[value[i + 1]])
                i += 2
                continue
            if quote and ch == quote:
                quote = None
            elif not quote and ch in "\"'":
                quote = ch
            else:
                word.append(ch)
            i += 1
        assert quote is None, "unterminated quote"
        words.append(_specifiers("".join(word)))
    return [_dollars(w) for w in words]


def _specifiers(word: str) -> str:
    out, i = [], 0
    while i < len(word):
        if word[i] == "%":
            assert word[i + 1 : i + 2] == "%", f"unescaped specifier in {word!r}"
            out.append("%")
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _dollars(word: str) -> str:
    out, i = [], 0
    while i < len(word):
        if word[i] == "$":
            assert word[i + 1 : i + 2] == "$", f"environment expansion in {word!r}"
            out.append("$")
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _cli_out(monkeypatch, capsys, cwd: Path, *argv: str) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    rc = cli_main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("weird", WEIRD, ids=repr)
def test_cron_line_runs_exactly_the_right_argv(tmp_path: Path, weird: str, monkeypatch, capsys):
    base = tmp_path / f"station {weird}"
    config = write_config(base, [job("obs", "true", "daily", "02:00")], rel=f"con fig {weird}/batch.toml")
    python = base / f"bin {weird}" / "py thon"
    python.parent.mkdir()
    python.write_text(FAKE_PY)
    python.chmod(0o755)
    rc, out, err = _cli_out(monkeypatch, capsys, base, "-c", str(config.relative_to(base)), "cron", "obs", "--python", str(python))
    note(faults_injected=1)
    if rc == 2 and "\\%" in weird:  # cron can't express a backslash before a percent sign: refusing is right
        assert len(err.strip().splitlines()) == 1 and out == ""
        return
    assert rc == 0, err
    line = out.rstrip("\n")
    assert "\n" not in line
    fields = line.split(" ", 5)
    assert fields[:5] == ["0", "2", "*", "*", "*"]
    command, stdin = cron_unescape(fields[5])
    assert stdin is None, f"an unescaped % would cut the command: {fields[5]!r}"
    expected = [str(python), "-m", "insect_console", "-c", str(config), "run-job", "obs"]
    assert shlex.split(command) == ["cd", str(base), "&&", *expected]
    # and /bin/sh agrees: run it the way cron would, with a fake python that reports its argv
    report = tmp_path / "report.json"
    subprocess.run(["/bin/sh", "-c", command], cwd="/", env={**os.environ, "FAKE_OUT": str(report)}, check=True, timeout=30)
    got = json.loads(report.read_text())
    assert got == {"argv": [str(python), *expected[1:]], "cwd": str(base)}


@pytest.mark.parametrize("weird", WEIRD, ids=repr)
def test_systemd_unit_execstart_words(tmp_path: Path, weird: str, monkeypatch, capsys):
    base = tmp_path / f"station {weird}"
    config = write_config(base, [job("obs", "true", "daily", "02:00")], rel=f"con fig {weird}/batch.toml")
    python = f"/opt/py {weird}/bin/python3"
    rc, out, err = _cli_out(monkeypatch, capsys, base, "-c", str(config.relative_to(base)), "systemd", "--python", python)
    assert rc == 0, err
    keys = [line.split("=", 1)[0] for line in out.splitlines() if "=" in line and not line.startswith("#")]
    assert keys == ["Description", "After", "Wants", "Type", "NotifyAccess", "User", "WorkingDirectory", "ExecStart", "ExecReload", "Restart", "RestartSec", "WatchdogSec", "TimeoutStopSec", "KillMode", "Environment", "WantedBy"]
    settings = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("#"))
    assert systemd_words(settings["ExecStart"]) == [python, "-m", "insect_console", "-c", str(config), "scheduler", "--no-ui"]
    assert _specifiers(settings["WorkingDirectory"]) == str(base)
    note(faults_injected=1)


def test_cron_refuses_a_path_with_a_newline(tmp_path: Path, monkeypatch, capsys):
    base = tmp_path / "x\n* * * * * touch pwned #"
    config = write_config(base, [job("obs", "true", "daily", "02:00")])
    rc, out, err = _cli_out(monkeypatch, capsys, base, "-c", str(config), "cron", "obs")
    assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, out, err)
    assert out == ""


def test_systemd_refuses_a_user_with_a_newline(tmp_path: Path, monkeypatch, capsys):
    write_config(tmp_path, [job("obs", "true", "daily", "02:00")])
    rc, out, err = _cli_out(monkeypatch, capsys, tmp_path, "systemd", "--user", "pi\nExecStartPre=/bin/touch /tmp/pwned")
    assert rc == 2, out
    assert "ExecStartPre" not in out
