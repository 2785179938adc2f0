"""Control protocol version 2, against a real daemon: what a console on another machine asks
instead of reading the station's files (config and its changes, history pages, one run's
record, output tails, previews, stats), and `hello`, which names the version."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from helpers import CONFIG_REL, cli, fast_settings, job, py_cmd, wait_for, write_config
from insect_console import history, records
from insect_console.config import ConfigStore
from insect_console.control import ControlClient, socket_path
from insect_console.errors import UserError, ValidationError
from insect_console.commands import MAX_CURSORS
from insect_console.protocol import PROTOCOL_VERSION, ProtocolMismatch, check_hello, config_from_wire

STEPS = py_cmd("import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(0.1)")
DAY = dt.date(2026, 3, 14)


def _newest_first() -> list[int]:
    """The fixture's runs, newest first: the newest day first, each day's latest first."""
    return sorted(range(30), key=lambda i: (-(i // 10), i), reverse=True)


def _name(i: int) -> str:
    return "a" if i % 3 else "b"


def _status(i: int) -> str:
    return "error" if i % 5 == 0 else "success"


def _client(base) -> ControlClient:
    return ControlClient(socket_path(ConfigStore(CONFIG_REL, base).runtime_dir))


@pytest.fixture
def station(tmp_path, daemons):
    """A daemon with two jobs and 30 runs of history (20 of "a", 10 of "b", every 5th an error)."""
    write_config(tmp_path, [job("a", STEPS, "daily", "23:59"), job("b", "true", "interval", "1h")], settings=fast_settings())
    log_dir = tmp_path / "logs" / "batch"
    for i in range(30):
        name, status = _name(i), _status(i)
        start = dt.datetime.combine(DAY - dt.timedelta(days=i // 10), dt.time(10, i))
        history.append_record(log_dir, records.finished(name, start=start, end=start + dt.timedelta(seconds=2), status=status,
                                                        output=f"out {i}\n", error="exit status 1: boom" if status == "error" else None,
                                                        exit_code=1 if status == "error" else 0, duration_s=2.0, run_id=f"r{i:02d}"))
    daemon = daemons(tmp_path)
    daemon.started()
    client = _client(tmp_path)
    yield tmp_path, daemon, client
    client.close()


def test_hello_names_the_version_and_the_commands(station):
    _base, daemon, client = station
    hello = check_hello(client.call("hello", version=PROTOCOL_VERSION))
    assert hello["version"] == PROTOCOL_VERSION and hello["pid"] == daemon.pid
    assert {"config", "add_job", "history_open", "history_page", "run_record", "output_tail", "output_since", "preview"} <= set(hello["features"])
    # a newer client is answered with the version both speak
    assert client.call("hello", version=PROTOCOL_VERSION + 5)["version"] == PROTOCOL_VERSION
    with pytest.raises(ProtocolMismatch, match="needs 3"):
        check_hello(hello, needed=3)


@pytest.mark.parametrize("version, needle", [(0, "unknown protocol version 0; this daemon speaks 1 to 2"), ("2", "must be a whole number"), (True, "must be a whole number")])
def test_hello_with_an_unknown_version_is_a_clear_refusal(station, version, needle):
    _base, daemon, client = station
    with pytest.raises(UserError, match=needle):
        client.call("hello", version=version)
    assert client.call("status")["pid"] == daemon.pid  # the connection goes on


def test_config_changes_are_validated_by_the_daemon_with_the_cli_s_words(station):
    base, daemon, client = station
    config = config_from_wire(client.call("config"))
    assert config.names() == ["a", "b"] and config.settings.kill_grace == 1
    client.call("add_job", job={"name": "c", "command": "true", "schedule_type": "daily", "schedule_time": "2:00"})
    assert config_from_wire(client.call("config")).job("c").schedule_time == "02:00"  # the daemon reloaded before answering
    client.call("set_enabled", name="c", enabled=False)
    client.call("replace_job", name="c", job={"name": "d", "command": "echo d", "schedule_type": "interval", "schedule_time": "15m"})
    assert [(j.name, j.enabled) for j in config_from_wire(client.call("config")).jobs] == [("a", True), ("b", True), ("d", True)]
    client.call("remove_job", name="d")
    assert config_from_wire(client.call("config")).names() == ["a", "b"]
    # the same one-line errors as the CLI gives for the same mistakes
    bad_time = {"name": "e", "command": "true", "schedule_type": "daily", "schedule_time": "25:00"}
    with pytest.raises(ValidationError) as wire:
        client.call("add_job", job=bad_time)
    done = cli(base, "add", "e", "true", "--type", "daily", "--time", "25:00")
    assert wire.value.field == "schedule_time" and str(wire.value) in done.stderr
    with pytest.raises(ValidationError, match="already exists"):
        client.call("add_job", job={"name": "a", "command": "true", "schedule_type": "daily", "schedule_time": "02:00"})
    with pytest.raises(ValidationError, match="--shell|shell"):
        client.call("add_job", job={"name": "f", "command": "a | b", "schedule_type": "daily", "schedule_time": "02:00"})
    with pytest.raises(UserError, match="no job named 'nope'"):
        client.call("remove_job", name="nope")
    with pytest.raises(UserError, match="'enabled' must be true or false"):
        client.call("set_enabled", name="a", enabled="yes")
    assert daemon.proc.poll() is None


def test_history_pages_through_a_cursor_with_the_console_s_filters(station):
    _base, _daemon, client = station
    cursor = client.call("history_open", query={})["cursor"]
    first = client.call("history_page", cursor=cursor, count=12)
    second = client.call("history_page", cursor=cursor, count=100)
    assert len(first["records"]) == 12 and not first["done"]
    assert len(second["records"]) == 18 and second["done"]
    ids = [r["run_id"] for r in first["records"] + second["records"]]
    assert ids == [f"r{i:02d}" for i in _newest_first()]
    assert "output" not in first["records"][0]  # slim: no output tail in a page
    only = client.call("history_open", query={"job": "a", "status": "error"})["cursor"]
    page = client.call("history_page", cursor=only, count=100)
    assert {(r["job_name"], r["status"]) for r in page["records"]} == {("a", "error")}
    day = client.call("history_open", query={"since": str(DAY), "until": str(DAY)})["cursor"]
    assert {r["start_time"][:10] for r in client.call("history_page", cursor=day, count=100)["records"]} == {str(DAY)}
    # one run's full record, found from its slim one
    full = client.call("run_record", record=first["records"][0])["record"]
    assert full["run_id"] == first["records"][0]["run_id"] and full["output"].startswith("out ")
    client.call("history_close", cursor=cursor)
    with pytest.raises(UserError, match="no history cursor"):
        client.call("history_page", cursor=cursor, count=1)
    with pytest.raises(UserError, match="status must be one of"):
        client.call("history_open", query={"status": "great"})
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        client.call("history_open", query={"since": "yesterday"})


def test_history_cursors_are_bounded_per_connection_and_end_with_it(station):
    base, _daemon, client = station
    opened = [client.call("history_open", query={})["cursor"] for _ in range(MAX_CURSORS + 2)]
    with pytest.raises(UserError, match="no history cursor"):
        client.call("history_page", cursor=opened[0], count=1)  # the oldest were closed
    assert client.call("history_page", cursor=opened[-1], count=1)["records"]
    other = _client(base)
    try:
        with pytest.raises(UserError, match="no history cursor"):
            other.call("history_page", cursor=opened[-1], count=1)  # cursors are per connection
    finally:
        other.close()


def test_output_tail_and_since_of_a_run_and_nothing_outside_the_log_directory(station):
    base, _daemon, client = station
    client.call("subscribe")
    client.call("run", job="a")
    log_dir = base / "logs" / "batch"
    done = wait_for(lambda: [r for r in history.HistoryReader(log_dir).latest(history.HistoryQuery(job="a", limit=1)) if r["run_id"].startswith("2")],
                    what="the run's record")
    path = done[0]["output_file"]
    tail = client.call("output_tail", path=path, max_lines=2)
    assert tail["lines"] == ["step 1", "step 2"] and tail["more"] and tail["size"] == os.path.getsize(path)
    grown = client.call("output_since", path=path, offset=0)
    assert grown["lines"] == ["step 0", "step 1", "step 2"] and grown["offset"] == tail["size"]
    assert client.call("output_since", path=path, offset=grown["offset"]) == {"lines": [], "offset": grown["offset"]}
    for outside in ("/etc/passwd", str(log_dir / ".." / ".." / CONFIG_REL), "../../config/batch_config.toml"):
        with pytest.raises(UserError, match="not a run output file of this station"):
            client.call("output_tail", path=outside, max_lines=10)


def test_preview_recent_results_and_stats(station):
    _base, _daemon, client = station
    runs = client.call("preview", job={"name": "p", "command": "true", "schedule_type": "daily", "schedule_time": "02:00"}, count=3)["runs"]
    times = [dt.datetime.fromisoformat(t) for t in runs]
    assert len(times) == 3 and all(t.astimezone().strftime("%H:%M") == "02:00" for t in times)
    assert all(b - a == dt.timedelta(days=1) for a, b in zip(times, times[1:]))
    results = client.call("recent_results", names=["a", "b", "zz"], width=3)["results"]
    assert results["a"] == [[_status(i), 2.0] for i in _newest_first() if _name(i) == "a"][:3]
    assert results["zz"] == []
    stats = client.call("stats")
    assert 0 <= stats["mem_percent"] <= 100 and stats["disk_free"] > 0
