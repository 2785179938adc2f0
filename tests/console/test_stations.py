"""`insect-console stations`: the overview of many stations, each reached over ssh.

Two real stations (a daemon each) behind two real sshds on loopback ports; one of them goes
down. A third station's ssh never gets an answer (its ProxyCommand only sleeps), and the other
rows fill all the same. Enter opens a station's console, esc comes back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from textual.widgets import DataTable

from helpers import Daemon, cli, job, write_config
from insect_console import history
from insect_console.app import create_app
from insect_console.screens import JobsScreen
from insect_console.screens.stations import StationsScreen
from insect_console.stations import Station, load_stations
from sshd import REMOTE_COMMAND, Sshd

from .conftest import console_settings, fixed_stats, record, run, screen_text, wait_until

SIZE = (80, 24)


@pytest.fixture
def two_stations(tmp_path: Path):
    """meadow and forest: a daemon and an sshd each; `hung` is a station whose ssh never connects."""
    made: list = []
    stations = []
    try:
        for name, jobs in (("meadow", [job("count", "true", "daily", "02:00"), job("fails", "false", "interval", "1h")]),
                           ("forest", [job("scan", "true", "interval", "15m")])):
            base = tmp_path / name
            config = write_config(base, jobs, console_settings(), rel="config.toml")
            if name == "meadow":  # a failure in its history: the overview shows its error
                start = dt.datetime.now().replace(microsecond=0) - dt.timedelta(minutes=5)
                history.append_record(base / "logs", record("fails", start, "error", error="exit status 1: camera not found", run_id="f1"))
                (base / "config.state.json").write_text(
                    '{"version": 1, "running": {}, "jobs": {"fails": {"last_run": "%s", "last_status": "error", "error_count": 2}}}' % start.isoformat())
            daemon = Daemon(base, config=str(config))
            made.append(daemon)
            server = Sshd(base / "ssh", (name,))
            made.append(server)
            server.start()
            daemon.started()
            stations.append((Station(name, name, str(config), REMOTE_COMMAND), daemon, server))
        # one ssh_config naming both stations (each its own sshd) and a third that hangs
        config_text = "".join(server.client_config.read_text() for _station, _daemon, server in stations)
        config_text += "\nHost hung\n  ProxyCommand sleep 600\n  BatchMode yes\n"
        ssh_config = tmp_path / "ssh_config"
        ssh_config.write_text(config_text)
        yield stations, ["ssh", "-F", str(ssh_config)]
    finally:
        for part in reversed(made):
            part.stop()


def row(app, name: str) -> dict[str, str]:
    table = app.screen.query_one(DataTable)
    cells = table.get_row(name)
    return {key: getattr(value, "plain", str(value)) for key, value in zip(table.columns, cells)}


def test_the_stations_overview_one_down_one_hung_and_a_station_s_console(two_stations):
    stations, ssh = two_stations
    (meadow, meadow_daemon, _), (forest, forest_daemon, forest_sshd) = stations
    hung = Station("hung", "hung", "config/batch_config.toml", REMOTE_COMMAND)
    app = create_app(None, stats_provider=fixed_stats, stations=[meadow, forest, hung], stations_source="stations.toml", ssh=ssh)

    async def go():
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, StationsScreen)
            await wait_until(pilot, lambda: row(app, "meadow")["up"] == "✓ up" and row(app, "forest")["up"] == "✓ up", timeout=30,
                             what="both stations to answer (while hung's ssh still waits)")
            assert row(app, "hung")["up"] == "…"  # one slow station holds up no other row
            assert row(app, "meadow")["jobs"] == "2" and row(app, "meadow")["failing"] == "1" and row(app, "meadow")["running"] == "0"
            assert row(app, "meadow")["error"].startswith("fails: exit status")
            assert "fails: exit status 1: camera not found" in screen_text(app)  # the selected station's detail, whole
            assert row(app, "forest")["jobs"] == "1" and row(app, "forest")["error"] == "none"
            assert row(app, "forest")["next"] != "—"
            # forest goes down
            forest_sshd.stop()
            await pilot.press("r")
            await wait_until(pilot, lambda: row(app, "forest")["up"] == "✗ no", timeout=30, what="forest to be down")
            assert "Connection refused" in screen.summaries["forest"].last_error
            assert row(app, "meadow")["up"] == "✓ up"
            # enter opens meadow's console; esc comes back
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=30, what="meadow's console")
            await wait_until(pilot, lambda: f"meadow · daemon pid {meadow_daemon.pid}" in screen_text(app), what="its top bar")
            assert "count" in screen_text(app) and "fails" in screen_text(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen and app.engine is None, what="back on the overview")
            # down a row: forest is down; enter says why in one line and stays here
            await pilot.press("down")
            await pilot.press("enter")
            refusal = await wait_until(pilot, lambda: [n for n in app._notifications if n.title == "Not connected to forest"], timeout=30,
                                       what="the refusal")
            assert "forest: ssh: connect to host 127.0.0.1" in refusal[0].message and "Connection refused" in refusal[0].message
            assert app.screen is screen

    run(go())
    assert meadow_daemon.proc.poll() is None and forest_daemon.proc.poll() is None  # nothing on a station stopped


def test_the_stations_file_mistakes_are_one_line(tmp_path):
    path = tmp_path / "stations.toml"
    path.write_text('[[stations]]\nname = "a"\nhost = "pi@a.local"\nconfig = "/srv/obs/config/batch_config.toml"\n\n'
                    '[[stations]]\nname = "b"\nhost = "b:2222"\n')
    a, b = load_stations(path)
    assert a.target().user == "pi" and a.target().host == "a.local" and b.target().port == 2222
    assert b.config == "config/batch_config.toml" and b.remote_command == "insect-console"
    for text, needle in (
        ("", "no stations"),
        ('[[stations]]\nname = "a"\n', "station 1: no host"),
        ('[[stations]]\nname = "a"\nhost = "x"\n[[stations]]\nname = "a"\nhost = "y"\n', "station 2: a station named 'a' is listed twice"),
        ('[[stations]]\nname = "a"\nhost = "x"\nport = 22\n', "'port' is not a station field"),
        ('[[stations]]\nname = "a"\nhost = "x:port"\n', "the port must be a number"),
        ("[[stations]\n", "not valid TOML"),
    ):
        path.write_text(text)
        done = cli(tmp_path, "stations", str(path), config=None)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and needle in done.stderr and str(path) in done.stderr, (needle, done.stderr)
    done = cli(tmp_path, "stations", str(tmp_path / "none.toml"), config=None)
    assert done.returncode == 2 and "no stations file" in done.stderr
