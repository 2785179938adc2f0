"""Every setting is documented where it is defined, and the README and a new config say the same."""

from __future__ import annotations

import tomllib
from pathlib import Path

from insect_console.config import ConfigStore, Settings, settings_table, toml_header

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_doc():
    for name, _default, doc in Settings.documented():
        assert doc.strip(), f"settings.{name} has no doc: give it one with setting(default, doc)"


def test_the_readme_settings_table_is_the_generated_one():
    text = README.read_text()
    start, end = "<!-- settings:start -->\n", "\n<!-- settings:end -->"
    assert start in text and end in text, "README.md lost its settings table markers"
    shown = text.split(start, 1)[1].split(end, 1)[0]
    assert shown == settings_table(), (
        "README.md's settings table is out of date; paste the output of\n"
        "  python -c 'from insect_console.config import settings_table; print(settings_table())'\n"
        "between its <!-- settings:start --> and <!-- settings:end --> markers"
    )


def test_a_new_config_starts_with_every_setting_and_its_default(tmp_path):
    store = ConfigStore(tmp_path / "config" / "new.toml", tmp_path)
    store.load(create=True)
    text = store.path.read_text()
    assert text.startswith(toml_header())
    for name, default, doc in Settings.documented():
        line = next(line for line in text.splitlines() if line.startswith(f"#   {name} = "))
        assert doc in line
        if default is None:  # TOML has no null: a setting with no default says so
            assert "(unset)" in line
            continue
        assert tomllib.loads(line[len("#   "):].split("  ", 1)[0])[name] == default
