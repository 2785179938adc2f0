"""A person's config keeps its comments: every write changes only the changed job's lines.

The CLI (real processes) adds, edits, enables, disables, renames and removes jobs in a file full
of comments and odd formatting; difflib against the file before shows only that job's lines.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import textwrap
import tomllib

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from forkserver import cli_forked
from helpers import CONFIG_REL, cli
from insect_console.config import ConfigStore
from insect_console.jobs import make_job

COMMENTED = textwrap.dedent(
    """\
    # Station 7, north meadow: the jobs of the insect camera.
    # Edited by hand over the years. Please keep these notes!

    [settings]
    log_dir = "logs/batch"     # on the USB stick
    default_timeout = 600      # ten minutes is plenty
      kill_grace=1             # odd spacing, on purpose
    shutdown_grace = 2

    # ==================== detection ====================

    # the detector: every 15 minutes in daylight
    [[jobs]]
    name = "detect"        # the dashboard links to this name
    command = 'python main.py --mode single'   # literal string
    schedule_type = "interval"
    schedule_time = "15m"

    # nightly analysis; takes ~40 minutes
    [[jobs]]
    schedule_type = "daily"    # keys in the order I like
    name = "analysis"
    schedule_time = "2:00"
    command = "python main.py --mode analysis"
    env = { OMP_NUM_THREADS = "2" }   # the Pi gets hot otherwise

    # ==================== housekeeping ====================

    # weekly backup to the NAS
    [[jobs]]
    name = "backup"
    command = "rsync -a data/ nas:/backup/"
    schedule_type = "weekly"
    schedule_time = "sun 03:00"
    enabled = false   # until the NAS is back
    [jobs.env]
    RSYNC_RSH = "ssh -p 2222"   # the NAS listens on 2222

    # end of file: nothing below this line
    """
)


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed lines, added lines) between two texts, as difflib sees them."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def comment_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def run(tmp_path, *args):
    done = cli_forked(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert "written anew" not in done.stderr, done.stderr   # the in-place edit was used, not the fallback
    return (tmp_path / CONFIG_REL).read_text()


def test_every_cli_change_touches_only_the_changed_jobs_lines(tmp_path):
    path = tmp_path / CONFIG_REL
    path.parent.mkdir(parents=True)
    path.write_text(COMMENTED)
    os.chmod(path, 0o600)
    text = COMMENTED

    # add: only new lines, after the last job; the end-of-file comment stays at the end
    after = run(tmp_path, "add", "moths", "python moths.py", "--type", "daily", "--time", "22:30", "--timeout", "300")
    removed, added = changed_lines(text, after)
    assert removed == []
    assert [line for line in added if line] == ['[[jobs]]', 'name = "moths"', 'command = "python moths.py"', 'schedule_type = "daily"',
                                                'schedule_time = "22:30"', "enabled = true", "timeout = 300"]
    assert after.rstrip().endswith("# end of file: nothing below this line")
    text = after

    # edit a command: that one line changes, its comment kept; the literal string of another job untouched
    after = run(tmp_path, "edit", "analysis", "--command", "python main.py --mode analysis --fast")
    assert changed_lines(text, after) == (['command = "python main.py --mode analysis"'], ['command = "python main.py --mode analysis --fast"'])
    text = after
    after = run(tmp_path, "edit", "detect", "--command", "python main.py --mode single --hdr")
    assert changed_lines(text, after) == (["command = 'python main.py --mode single'   # literal string"],
                                          ['command = "python main.py --mode single --hdr"   # literal string'])
    text = after

    # edit a schedule and a timeout: the changed key rewritten where it is, a new key after the job's own keys
    after = run(tmp_path, "edit", "analysis", "--time", "03:15", "--timeout", "3600")
    assert changed_lines(text, after) == (['schedule_time = "2:00"'], ['schedule_time = "03:15"', "timeout = 3600"])
    text = after
    after = run(tmp_path, "edit", "backup", "--timeout", "900")       # before its [jobs.env] sub-table, not inside it
    assert changed_lines(text, after) == ([], ["timeout = 900"])
    assert tomllib.loads(after)["jobs"][2]["timeout"] == 900
    text = after

    # enable / disable: one line each
    after = run(tmp_path, "enable", "backup")
    assert changed_lines(text, after) == (["enabled = false   # until the NAS is back"], ["enabled = true   # until the NAS is back"])
    text = after
    after = run(tmp_path, "disable", "detect")
    assert changed_lines(text, after) == ([], ["enabled = false"])
    text = after

    # rename: the name line, with its comment
    after = run(tmp_path, "edit", "detect", "--rename", "detector")
    assert changed_lines(text, after) == (['name = "detect"        # the dashboard links to this name'],
                                          ['name = "detector"        # the dashboard links to this name'])
    text = after

    # remove: the job's lines and the comment right above its header go, nothing else
    after = run(tmp_path, "remove", "analysis")
    removed, added = changed_lines(text, after)
    assert added == []
    assert [line for line in removed if line] == [
        "# nightly analysis; takes ~40 minutes", "[[jobs]]", 'schedule_type = "daily"    # keys in the order I like', 'name = "analysis"',
        'schedule_time = "03:15"', 'command = "python main.py --mode analysis --fast"', 'env = { OMP_NUM_THREADS = "2" }   # the Pi gets hot otherwise',
        "timeout = 3600"]
    assert removed.count("") <= 1
    text = after

    # every comment of the original is still there, but the removed job's own
    lost = set(comment_lines(COMMENTED)) - set(comment_lines(text))
    assert lost == {"# nightly analysis; takes ~40 minutes"}
    assert "# ==================== detection ====================" in text and "# weekly backup to the NAS" in text
    assert text.startswith("# Station 7, north meadow")
    assert "  kill_grace=1             # odd spacing, on purpose\n" in text

    # and the file means what the commands said
    listed = {s["name"]: s for s in json.loads(cli(tmp_path, "list", "--json").stdout)}
    assert sorted(listed) == ["backup", "detector", "moths"]
    assert (listed["detector"]["enabled"], listed["backup"]["enabled"]) == (False, True)


def test_removing_the_only_job_and_adding_one_back(tmp_path):
    path = tmp_path / CONFIG_REL
    path.parent.mkdir(parents=True)
    original = "# just one job\n\n[[jobs]]\nname = \"a\"\ncommand = \"true\"\nschedule_type = \"interval\"\nschedule_time = \"60\"\n"
    path.write_text(original)
    os.chmod(path, 0o600)
    emptied = run(tmp_path, "remove", "a")
    assert emptied.startswith("# just one job\n") and "[[jobs]]" not in emptied
    back = run(tmp_path, "add", "b", "true", "--type", "daily", "--time", "01:00")
    assert back.startswith("# just one job\n")
    assert [j["name"] for j in tomllib.loads(back)["jobs"]] == ["b"]


def test_a_spec_json_config_keeps_its_key_order(tmp_path):
    path = tmp_path / "config" / "jobs.json"
    path.parent.mkdir(parents=True)
    doc = {"jobs": [
        {"schedule_time": "3600", "name": "a", "schedule_type": "interval", "command": "echo a", "enabled": True,
         "last_run": None, "last_status": None, "error_count": 0},
        {"name": "b", "enabled": True, "command": "echo b", "schedule_type": "daily", "schedule_time": "02:00",
         "last_run": None, "last_status": None, "error_count": 0},
    ]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    os.chmod(path, 0o600)
    done = cli_forked(tmp_path, "disable", "b", config="config/jobs.json")
    assert done.returncode == 0, done.stderr
    done = cli_forked(tmp_path, "edit", "a", "--time", "2h", config="config/jobs.json")
    assert done.returncode == 0, done.stderr
    done = cli_forked(tmp_path, "add", "c", "echo c", "--type", "interval", "--time", "60", config="config/jobs.json")
    assert done.returncode == 0, done.stderr
    jobs = json.loads(path.read_text())["jobs"]
    assert list(jobs[0]) == list(doc["jobs"][0]) and jobs[0]["schedule_time"] == "2h"
    assert list(jobs[1]) == list(doc["jobs"][1]) and jobs[1]["enabled"] is False
    assert [j["name"] for j in jobs] == ["a", "b", "c"]
    removed, added = changed_lines(json.dumps(doc, indent=2), path.read_text())
    assert removed == ['      "schedule_time": "3600",', '      "enabled": true,'], removed   # the two changed values, nothing else


# -- the same through the store, for many random sequences of changes --------------------------------------


changes = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "enable", "disable", "command", "timeout", "rename", "env"]),
        st.integers(0, 5),
        st.sampled_from(["x", "y", "z", "ü", "a b", "tab\there", 'q"uote']),
    ),
    min_size=1,
    max_size=8,
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=changes)
def test_random_changes_keep_every_other_line(tmp_path_factory, steps, caplog):
    base = tmp_path_factory.mktemp("edits")
    store = ConfigStore(CONFIG_REL, base_dir=base)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(COMMENTED)
    os.chmod(store.path, 0o600)
    counter = 0
    with caplog.at_level(logging.WARNING, logger="insect_console.config"):
        for kind, pick, word in steps:
            config = store.load(create=False)
            names = config.names()
            before = store.path.read_text()
            name = names[pick % len(names)] if names else None
            if kind == "add" or name is None:
                counter += 1
                job = make_job({"name": f"new{counter}", "command": f"echo {word!r}".replace("\t", " "), "schedule_type": "interval", "schedule_time": "60"})
                new = store.add_job(job)
            elif kind == "remove":
                new = store.remove_job(name)
            elif kind in ("enable", "disable"):
                new = store.set_enabled(name, kind == "enable")
            else:
                job = config.job(name)
                if kind == "command":
                    job = job.replace(command=f"echo {word!r}".replace("\t", " "))
                elif kind == "timeout":
                    job = job.replace(timeout=None if job.timeout else 30 + pick)
                elif kind == "rename":
                    counter += 1
                    job = job.replace(name=f"{name}_{counter}")
                else:
                    job = job.replace(env={} if job.env else {"K": word})
                new = store.replace_job(name, job)
            after = store.path.read_text()
            assert store.load(create=False) == new
            # lines of jobs the change did not touch are all still there
            removed, _ = changed_lines(before, after)
            touched = {name} if name else set()
            for other in new.jobs:
                if other.name not in touched and f'"{other.name}"' in before:
                    assert not any(f'"{other.name}"' in line for line in removed), (kind, other.name, removed)
        assert "written anew" not in caplog.text
    assert after.startswith("# Station 7, north meadow")
    assert "# ==================== detection ====================" in after
