"""Unit tests of the console's pure pieces: formatting, the output hub, file tails, stats."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import namedtuple

import pytest

from insect_console import records
from insect_console.events import OutputLines, RunFinished, RunStarted
from insect_console import sysstats as stats_mod
from insect_console import textfmt as f
from insect_console.runoutput import FileFollower, OutputHub, tail_lines
from insect_console.sysstats import SystemStats
from insect_console.widgets import cells

NOW = dt.datetime(2026, 3, 14, 10, 0, 0)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (4.9, "4s"),
        (59, "59s"),
        (65, "1m05s"),
        (599, "9m59s"),
        (600, "10m"),
        (3599, "59m"),
        (3720, "1h02m"),
        (35999, "9h59m"),
        (36000, "10h"),
        (86400 + 3 * 3600, "1d03h"),
        (12 * 86400, "12d"),
        (None, ""),
    ],
)
def test_short_duration_fits_five_cells(seconds, text):
    assert f.short_duration(seconds) == text
    assert len(text) <= 5


def test_run_duration():
    assert f.run_duration(None) == "—"
    assert f.run_duration(0.42) == "0.4s"
    assert f.run_duration(65) == "1m05s"
    assert f.run_duration(3720) == "1h02m"


def test_status_text_has_a_symbol_for_every_status():
    for status in ("success", "error", "timeout", "interrupted", "skipped"):
        text = cells.status_text(status)
        assert text.plain[0] != " " and text.plain[1] == " ", status
    assert cells.status_text(None).plain == "· never"
    assert cells.status_text("weird").plain == "? weird"


def test_next_run_cell():
    assert cells.next_run_cell(NOW + dt.timedelta(seconds=5), NOW).plain == "10:00:05 5s"
    assert cells.next_run_cell(dt.datetime(2026, 3, 15, 0, 0), NOW).plain == "Sun 00:00 14h"
    assert cells.next_run_cell(NOW - dt.timedelta(seconds=1), NOW).plain == "09:59:59 now"
    assert cells.next_run_cell(NOW + dt.timedelta(seconds=0.4), NOW).plain == "10:00:00 1s"  # a countdown rounds up
    assert cells.next_run_cell(None, NOW).plain == "—"
    assert cells.next_run_cell(NOW, NOW, enabled=False).plain == "off"


def test_last_run_cell_and_parse_time():
    assert f.last_run_text(f.parse_local("2026-03-14T09:59:57"), NOW) == "09:59:57"
    assert f.last_run_text(f.parse_local("2026-03-08T00:00:00"), NOW) == "Mar 08"
    assert f.last_run_text(None, NOW) == "—"
    aware = dt.datetime(2026, 3, 14, 9, 0, tzinfo=dt.timezone.utc)
    assert f.parse_local(aware.isoformat()) == aware.astimezone().replace(tzinfo=None)
    assert f.parse_local("not a time") is None and f.parse_local(None) is None


def test_sparkline_and_strip():
    assert f.sparkline([1, 2, 3, 4, 5, 6, 7, 8], 8) == "▁▂▃▄▅▆▇█"
    assert f.sparkline([2, 2, 2], 8) == "▁▁▁"
    assert f.sparkline([], 8) == ""
    assert len(f.sparkline(list(range(100)), 24)) == 24
    assert cells.result_strip(["success", "error", "timeout"], 2).plain == "✗◷"


def test_clip_one_line_human_bytes():
    assert f.clip("hourly_detection", 14) == "hourly_detect…"
    assert f.clip("quick", 14) == "quick"
    assert f.one_line("first\nsecond") == "first …"
    assert f.one_line("only\n") == "only"
    assert f.human_bytes(int(21.4 * 1024**3)) == "21.4G"
    assert f.human_bytes(512) == "512B"


def _lines(run_id: str, n0: int, n1: int, job: str = "j") -> OutputLines:
    return OutputLines(run_id, job, "stdout", tuple(f"line {i}" for i in range(n0, n1)))


def test_output_hub_notifies_once_until_read():
    hub = OutputHub(capacity=100)
    hub.started(RunStarted("r1", "j", "manual", "2026-03-14T10:00:00", 1, None))
    assert hub.add(_lines("r1", 0, 10)) is True
    assert hub.add(_lines("r1", 10, 20)) is False  # still pending: no second message
    chunk = hub.read("j")
    assert chunk.run_id == "r1" and chunk.start == 0 and len(chunk.lines) == 20 and chunk.dropped == 0
    assert hub.add(_lines("r1", 20, 25)) is True
    chunk = hub.read("j", "r1", 20)
    assert chunk.lines == [f"line {i}" for i in range(20, 25)]


def test_output_hub_is_bounded_and_counts_what_it_dropped():
    hub = OutputHub(capacity=100)
    for start in range(0, 200_000, 1000):
        hub.add(_lines("r1", start, start + 1000))
    chunk = hub.read("j", "r1", 0)
    assert len(chunk.lines) == 100
    assert chunk.lines[-1] == "line 199999"
    assert chunk.dropped == 199_900 and chunk.start == 199_900 and chunk.total == 200_000


def test_output_hub_new_run_starts_over_and_records_the_end():
    hub = OutputHub(capacity=10)
    hub.add(_lines("r1", 0, 3))
    record = records.finished("j", start=NOW, end=NOW, status="success", run_id="r1")
    hub.finished(RunFinished("r1", "j", record))
    chunk = hub.read("j", "r1", 0)
    assert chunk.finished and chunk.record == record
    hub.add(_lines("r2", 0, 2))
    chunk = hub.read("j", "r1", 3)  # asked for r1 from 3: r2 is new, so from its start
    assert chunk.run_id == "r2" and chunk.lines == ["line 0", "line 1"] and not chunk.finished
    assert hub.read("other").run_id is None


def test_tail_lines(tmp_path):
    path = tmp_path / "out.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)))
    lines, more = tail_lines(path, 1000)
    assert len(lines) == 1000 and lines[-1] == "line 99999" and lines[0] == "line 99000" and more
    small = tmp_path / "small.log"
    small.write_text("a\nb\nc")
    assert tail_lines(small, 10) == (["a", "b", "c"], False)
    assert tail_lines(tmp_path / "missing.log", 10) == ([], False)


def test_tail_lines_reads_a_bounded_amount_of_one_endless_line(tmp_path):
    path = tmp_path / "one.log"
    path.write_bytes(b"x" * (20 << 20))
    lines, more = tail_lines(path, 10)
    assert more and sum(len(line) for line in lines) <= (9 << 20)


def test_file_follower_reads_only_new_whole_lines(tmp_path):
    path = tmp_path / "grow.log"
    path.write_text("old\n")
    follower = FileFollower(path, offset=path.stat().st_size)
    assert follower.read_new() == []
    with open(path, "a") as fh:
        fh.write("new 1\nnew")
    assert follower.read_new() == ["new 1"]
    with open(path, "a") as fh:
        fh.write(" 2\n")
    assert follower.read_new() == ["new 2"]


def test_stats_describe():
    assert SystemStats(12.4, 41.0, int(21.4 * 1024**3), 48.2).describe() == "CPU 12% · mem 41% · disk 21.4G free · 48°C"
    assert SystemStats(cpu_percent=3).describe() == "CPU 3%"
    assert SystemStats().describe() == ""


def test_cpu_temperature_prefers_the_cpu_sensor(monkeypatch):
    Temp = namedtuple("Temp", "label current high critical")
    monkeypatch.setattr(stats_mod.psutil, "sensors_temperatures", lambda: {"nvme": [Temp("", 35.0, None, None)], "cpu_thermal": [Temp("", 52.1, None, None)]}, raising=False)
    assert stats_mod.cpu_temperature() == 52.1
    monkeypatch.setattr(stats_mod.psutil, "sensors_temperatures", lambda: {}, raising=False)
    assert stats_mod.cpu_temperature() is None
    monkeypatch.delattr(stats_mod.psutil, "sensors_temperatures", raising=False)
    assert stats_mod.cpu_temperature() is None


def test_psutil_stats_on_a_missing_log_dir(tmp_path):
    stats = stats_mod.PsutilStats(tmp_path / "not" / "there")()
    assert stats.disk_free and stats.disk_free > 0
    assert 0 <= stats.mem_percent <= 100


def test_headless_modules_do_not_load_textual():
    code = "import sys, insect_console.cli, insect_console.engine, insect_console.daemon; assert not any(m == 'textual' or m.startswith('textual.') for m in sys.modules), 'textual loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tone_drops_colours_under_no_color():
    try:
        cells.set_monochrome(True)
        assert cells.tone("bold red") == "bold" and cells.tone("green") == "" and cells.tone("dim") == "dim"
        assert cells.status_text("error").style == "bold"
    finally:
        cells.set_monochrome(False)
    assert cells.tone("bold red") == "bold red"
