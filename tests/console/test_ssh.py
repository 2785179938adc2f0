"""The console of a station elsewhere (`--host`): a real daemon behind a real sshd on a loopback
port, reached with `ssh -T station-a insect-console -c CONFIG control-stdio` and driven with
Pilot. Everything comes over the control protocol: the test's files are the station's, read
here only to check what the daemon did."""

from __future__ import annotations

import datetime as dt
import signal
import tomllib
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from helpers import PY, Daemon, cli, job, write_config
from insect_console import history
from insect_console.app import create_app
from insect_console.control import DaemonGone
from insect_console.history import HistoryQuery, HistoryReader
from insect_console.screens import ConfirmScreen, HistoryScreen, JobFormScreen, OutputScreen, RunDetailScreen
from insect_console.sshengine import SshEngine
from insect_console.transport import SshTarget
from sshd import REMOTE_COMMAND, Sshd, running_sshd

from .conftest import console_settings, fixed_stats, record, run, screen_text, wait_until

SIZE = (80, 24)
STEPS = f"{PY} -c \"import time\nfor i in range(4):\n    print('step', i, flush=True)\n    time.sleep(0.3)\""


@pytest.fixture
def sshd(tmp_path: Path):
    with running_sshd(tmp_path / "ssh") as server:
        yield server


@pytest.fixture
def station(tmp_path: Path, sshd: Sshd):
    """A daemon on tmp_path/config.toml behind the sshd; yields (daemon, config, engine factory)."""
    config = write_config(tmp_path, [job("steps", STEPS, "daily", "02:00"), job("other", "true", "daily", "02:00"),
                                     job("long", f"{PY} -c \"import time; print('up', flush=True); time.sleep(60)\"", "daily", "02:00")],
                          console_settings(), rel="config.toml")
    daemon = Daemon(tmp_path, config=str(config))
    engines: list[SshEngine] = []

    def connect(start: bool = True) -> SshEngine:
        engine = SshEngine(SshTarget("station-a", config=str(config), remote_command=REMOTE_COMMAND), ssh=sshd.ssh)
        engines.append(engine)
        if start:
            engine.start()
        return engine

    try:
        daemon.started()
        yield daemon, config, connect
    finally:
        for engine in engines:
            engine.stop()
        daemon.stop()


def console(connect):
    """A console on a new connection to the station: (engine, app)."""
    engine = connect()
    return engine, create_app(engine, stats_provider=fixed_stats)


def _jobs(config: Path) -> dict[str, dict]:
    return {j["name"]: j for j in tomllib.loads(config.read_text())["jobs"]}


def test_run_now_and_live_output_over_ssh(station, tmp_path):
    daemon, config, connect = station
    engine, app = console(connect)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: f"station-a · daemon pid {daemon.pid}" in screen_text(app), what="the station in the top bar")
            assert "steps" in screen_text(app) and "other" in screen_text(app)
            await pilot.press("r")
            await pilot.press("l")
            await wait_until(pilot, lambda: isinstance(app.screen, OutputScreen), what="the output screen")
            await wait_until(pilot, lambda: "step 3" in screen_text(app), timeout=20, what="the output lines, live over ssh")
            await wait_until(pilot, lambda: HistoryReader(tmp_path / "logs").latest(), timeout=20, what="the record")
            await pilot.press("escape")
            await wait_until(pilot, lambda: "✓ success" in screen_text(app), timeout=20, what="the result in the table")
            # kill, through the station's daemon
            table = app.screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index("long"))
            await pilot.press("r")
            await wait_until(pilot, lambda: "long" in engine.active_runs() and engine.active_runs()["long"].pid, timeout=20, what="long to run")
            await pilot.press("k")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the kill question")
            await pilot.press("y")
            await wait_until(pilot, lambda: HistoryReader(tmp_path / "logs").latest(HistoryQuery(job="long")), timeout=30, what="long's record")

    run(go())
    steps, = HistoryReader(tmp_path / "logs").latest(HistoryQuery(job="steps"))
    assert steps["status"] == "success" and steps["trigger"] == "manual"
    assert "steps: started (manual" in daemon.log  # the station's daemon ran it
    long, = HistoryReader(tmp_path / "logs").latest(HistoryQuery(job="long"))
    assert long["status"] == "error" and long["error"] == "killed on request"


def test_a_form_save_over_ssh_is_written_by_the_daemon(station):
    daemon, config, connect = station
    engine, app = console(connect)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "steps" in screen_text(app), what="the jobs")
            await pilot.press("e")
            form = app.screen
            assert isinstance(form, JobFormScreen) and form.query_one("#name", Input).value == "steps"
            form.query_one("#schedule_time", Input).value = "03:15"
            await wait_until(pilot, lambda: "next" in screen_text(app) and "03:15" in screen_text(app), what="the station's preview")
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, JobFormScreen), timeout=20, what="the form to close")
            assert _jobs(config)["steps"]["schedule_time"] == "03:15"
            await wait_until(pilot, lambda: "daily 03:15" in screen_text(app), timeout=20, what="the new schedule in the table")
            await pilot.press("a")
            form = app.screen
            for field, value in (("name", "added"), ("command", "echo added"), ("schedule_time", "15m")):
                form.query_one(f"#{field}", Input).value = value
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: "added" in _jobs(config), timeout=20, what="the new job in the station's config")
            await wait_until(pilot, lambda: "every 15m" in screen_text(app), timeout=20, what="the new job in the table")
            table = app.screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index("other"))
            await pilot.press("space")  # disable, through the daemon
            await wait_until(pilot, lambda: _jobs(config)["other"]["enabled"] is False, timeout=20, what="other disabled on the station")
            await wait_until(pilot, lambda: not engine.config.job("other").enabled, timeout=20, what="the console to know")

    run(go())
    daemon.wait_log("config reloaded")


def test_a_page_of_history_and_one_run_over_ssh(station, tmp_path):
    daemon, config, connect = station
    out = tmp_path / "logs" / "output" / "20260312" / "steps-run.log"
    out.parent.mkdir(parents=True)
    out.write_text("the station's own output line\n")
    base = dt.datetime(2026, 3, 10, 12, 0)
    for i in range(450):
        start = base + dt.timedelta(minutes=10 * i)
        history.append_record(tmp_path / "logs", record("steps" if i % 2 else "other", start, "success" if i % 7 else "error",
                                                        run_id=f"r{i:03d}", output_file=str(out) if i == 449 else None))
    engine, app = console(connect)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("h")
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            table = screen.query_one("#runs-table", DataTable)
            await wait_until(pilot, lambda: table.row_count >= 100, timeout=20, what="the first page")
            assert str(table.get_row_at(0)[1]) == "steps"  # newest first: r449 (job text cells are Text, never markup)
            assert "more below" in screen_text(app)

            def scrolled_to_the_end() -> bool:  # each move to the last row asks for the next page
                table.move_cursor(row=table.row_count - 1)
                return table.row_count == 450

            await wait_until(pilot, scrolled_to_the_end, timeout=30, what="the next pages")
            await wait_until(pilot, lambda: "end of history" in screen_text(app), what="the end")
            table.move_cursor(row=0)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run")
            await wait_until(pilot, lambda: "the station's own output line" in screen_text(app), timeout=20, what="its output file, read on the station")
            assert "r449" in screen_text(app)

    run(go())


def test_an_ssh_drop_says_so_offers_to_reconnect_and_the_station_goes_on(station, sshd):
    daemon, config, connect = station
    engine, app = console(connect)

    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "station-a · daemon pid" in screen_text(app), what="connected")
            for session in sshd.sessions():  # the network goes: sshd's side of the connection ends
                session.send_signal(signal.SIGKILL)
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=20, what="the offer to reconnect")
            await wait_until(pilot, lambda: "The connection to station-a was lost." in screen_text(app), what="the dialog")
            dialog = app.screen
            assert dialog.yes_label == "Reconnect" and "closed by remote host" in dialog.detail  # ssh's own words
            assert "Nothing on the station stops: its daemon goes on scheduling." in dialog.detail
            await wait_until(pilot, lambda: "station-a: CONNECTION LOST" in screen_text(app).splitlines()[0], what="the top bar to say so")
            assert daemon.proc.poll() is None
            await pilot.press("y")
            await wait_until(pilot, lambda: app.engine is not engine and app.engine.running, timeout=30, what="a new connection")
            await wait_until(pilot, lambda: "station-a · daemon pid" in screen_text(app).splitlines()[0], what="the top bar")
            await pilot.press("r")  # and it works: the run happens on the station
            await wait_until(pilot, lambda: "steps: started (manual" in daemon.log, timeout=20, what="the run")

    try:
        run(go())
    finally:
        app.engine.stop()
    assert daemon.proc.poll() is None  # nothing on the station stopped


def test_an_unreachable_station_or_no_daemon_is_one_clear_line(station, sshd, tmp_path):
    daemon, config, connect = station
    engine = SshEngine(SshTarget("127.0.0.1", port=1, config=str(config), remote_command=REMOTE_COMMAND), ssh=sshd.ssh)
    with pytest.raises(DaemonGone, match="127.0.0.1: ssh: connect to host 127.0.0.1 port 1: Connection refused"):
        engine.start()
    daemon.stop()
    with pytest.raises(DaemonGone, match="station-a: insect-console: no daemon is running for"):
        connect()
    # the CLI says the same in one line, exit 2
    env = {"INSECT_CONSOLE_SSH": " ".join(sshd.ssh)}
    done = cli(tmp_path, "--host", "station-a", "--remote-command", REMOTE_COMMAND, config=str(config), env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [f"insect-console: station-a: insect-console: no daemon is running for {config} "
                                                "(nothing listens on its control socket); start it with `insect-console scheduler --no-ui` or its systemd unit"]
    done = cli(tmp_path, "--host", "station-a:x", config=str(config), env=env)
    assert done.returncode == 2 and done.stderr.strip() == "insect-console: --host 'station-a:x': the port must be a number from 1 to 65535"
