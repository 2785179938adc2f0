"""Config writes that keep what a person wrote: comments, blank lines, key order, formatting.

`edit_toml` changes a TOML config's text from one Config to the next by touching only the
`[[jobs]]` tables that changed: for a changed job only the keys whose values changed, a
removed job's lines (with the comment lines right above its header) go, a new job is added
after the last one. tomlkit (style-preserving TOML) parses the file, finds where each table
starts and rewrites the keys of a changed table; the rest of the text is kept byte for byte.
`edit_json` does the same for a spec-format JSON config, keeping its key order.

Only write paths import this module (tomlkit takes ~50 ms to import; `list` never needs it).
The caller reads the result back and compares it with the intended config before writing.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Mapping

import tomlkit
from tomlkit.items import AoT, Table

from insect_console.jobs import Job

Config = Any
"""config.Config (not imported here: config imports this module when it writes a file)."""

_MARK = "\0"
"""NUL can't appear in a TOML document, so it marks table headers unambiguously."""


class CantEdit(Exception):
    """The file has a shape this module does not edit in place (the caller rewrites it whole)."""


# -- pairing old and new jobs -----------------------------------------------------------------------


def pair_jobs(old: tuple[Job, ...], new: tuple[Job, ...]) -> list[tuple[int | None, int | None]]:
    """(old index, new index) pairs in order: kept or changed (a rename is a change in place),
    removed (new None) and added (old None)."""
    matcher = difflib.SequenceMatcher(a=[j.name for j in old], b=[j.name for j in new], autojunk=False)
    pairs: list[tuple[int | None, int | None]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        n = min(i2 - i1, j2 - j1) if tag in ("equal", "replace") else 0
        pairs += [(i1 + k, j1 + k) for k in range(n)]
        pairs += [(i, None) for i in range(i1 + n, i2)]
        pairs += [(None, j) for j in range(j1 + n, j2)]
    return pairs


# -- values ------------------------------------------------------------------------------------------


def _toml_value(value: Any):
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        table.update(dict(value))
        return table
    return value


def _key_line(key: str, value: Any) -> str:
    doc = tomlkit.document()
    doc.add(key, _toml_value(value))
    return doc.as_string()


def job_table(job: Job) -> Table:
    table = tomlkit.table()
    for key, value in job.to_dict().items():
        table.add(key, _toml_value(value))
    return table


def job_block(job: Job) -> str:
    """A new `[[jobs]]` table as text."""
    doc = tomlkit.document()
    aot = tomlkit.aot()
    aot.append(job_table(job))
    doc.append("jobs", aot)
    return doc.as_string()


def render_new(header: str, config: Config) -> str:
    """A whole new file: the header comment, every setting, then the jobs."""
    doc = tomlkit.document()
    settings = tomlkit.table()
    for key, value in config.settings.to_dict().items():
        settings.add(key, value)
    doc.append("settings", settings)
    if config.jobs:
        aot = tomlkit.aot()
        for job in config.jobs:
            aot.append(job_table(job))
        doc.append("jobs", aot)
    return header + doc.as_string()


# -- where the tables are -------------------------------------------------------------------------------


def _offsets_in(doc: Any, tables: list[Any], text: str) -> list[int]:
    """The offset in `text` of each table's header line, found by rendering the document with a
    marker in front of each header (tomlkit renders a header's indent verbatim)."""
    saved = [t.trivia.indent for t in tables]
    try:
        for i, t in enumerate(tables):
            t.trivia.indent = f"{_MARK}{i}{_MARK}{t.trivia.indent}"
        rendered = doc.as_string()
    finally:
        for t, indent in zip(tables, saved):
            t.trivia.indent = indent
    offsets: list[int | None] = [None] * len(tables)
    out, pos, removed = [], 0, 0
    while True:
        start = rendered.find(_MARK, pos)
        if start < 0:
            out.append(rendered[pos:])
            break
        end = rendered.index(_MARK, start + 1)
        out.append(rendered[pos:start])
        index = int(rendered[start + 1 : end])
        offsets[index] = start - removed
        removed += end + 1 - start
        pos = end + 1
    if "".join(out) != text or any(o is None for o in offsets):
        raise CantEdit("tomlkit did not render the file back as it is")
    for o in offsets:
        if o and text[o - 1] != "\n":
            raise CantEdit("a table header does not start a line")
    return offsets  # type: ignore[return-value]


def _is_blank(line: str) -> bool:
    return not line.strip()


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


class _Layout:
    """The file as lines, and for each job: its header line, where its keys end, where the
    comment lines right above its header start, and where its block ends."""

    def __init__(self, text: str, n_jobs: int) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        doc = tomlkit.parse(text)
        jobs = doc.get("jobs") if "jobs" in doc else None
        if n_jobs and not isinstance(jobs, AoT):
            raise CantEdit("the jobs are not written as [[jobs]] tables")
        job_tables = list(jobs.body) if isinstance(jobs, AoT) else []
        if len(job_tables) != n_jobs:
            raise CantEdit("the [[jobs]] tables are not where tomlkit expects them")
        others = [item for key, item in doc.body if key is not None and isinstance(item, Table) and not item.is_super_table()]
        offsets = _offsets_in(doc, job_tables + others, text) if job_tables or others else []
        line_of = self._line_index(offsets)
        self.headers = line_of[: len(job_tables)]
        boundaries = sorted(set(line_of))
        if self.headers != sorted(self.headers):
            raise CantEdit("the [[jobs]] tables are not in order")
        self.ends = [next((b for b in boundaries if b > h), len(self.lines)) for h in self.headers]
        self.content_ends = [self._content_end(h, e) for h, e in zip(self.headers, self.ends)]
        self.own_starts = [self._own_start(h) for h in self.headers]

    def _line_index(self, offsets: list[int]) -> list[int]:
        starts, pos = {}, 0
        for i, line in enumerate(self.lines):
            starts[pos] = i
            pos += len(line)
        try:
            return [starts[o] for o in offsets]
        except KeyError:
            raise CantEdit("a table header does not start a line") from None

    def _content_end(self, header: int, end: int) -> int:
        """One past the table's last line that is neither blank nor a comment."""
        last = header
        for i in range(header + 1, end):
            if not _is_blank(self.lines[i]) and not _is_comment(self.lines[i]):
                last = i
        return last + 1

    def _own_start(self, header: int) -> int:
        """The first of the comment lines right above the header (no blank line between): they
        describe this job. A comment block that starts the file is the file's, not the job's."""
        i = header
        while i > 0 and _is_comment(self.lines[i - 1]):
            i -= 1
        return header if i == 0 else i

    def blank_run_after(self, line: int) -> int:
        i = line
        while i < len(self.lines) and _is_blank(self.lines[i]):
            i += 1
        return i - line

    def blank_run_before(self, line: int) -> int:
        i = line
        while i > 0 and _is_blank(self.lines[i - 1]):
            i -= 1
        return line - i


# -- the edit -----------------------------------------------------------------------------------------


def edit_toml(text: str, old: Config, new: Config) -> str:
    """`text` (which reads as `old`) changed so that it reads as `new`, touching only what changed."""
    if old.settings != new.settings:
        raise CantEdit("settings are not edited in place")
    if text and not text.endswith("\n"):
        text += "\n"
    layout = _Layout(text, len(old.jobs))
    lines = layout.lines
    edits: list[tuple[int, int, list[str]]] = []  # (start line, end line, replacement), applied bottom up
    pairs = pair_jobs(old.jobs, new.jobs)
    last_old: int | None = None  # the old job a new one is added after
    for i, j in pairs:
        if i is not None and j is not None:
            if old.jobs[i] != new.jobs[j]:
                h, c = layout.headers[i], layout.content_ends[i]
                edits.append((h, c, _patched(lines[h:c], old.jobs[i], new.jobs[j]).splitlines(keepends=True)))
            last_old = i
        elif i is not None:
            edits.append(_removal(layout, i))
            last_old = i
        else:
            edits.append(_insertion(layout, last_old, new.jobs[j]))
    out = list(lines)
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out[start:end] = replacement
    return "".join(out)


def _removal(layout: _Layout, i: int) -> tuple[int, int, list[str]]:
    start, end = layout.own_starts[i], layout.content_ends[i]
    after, before = layout.blank_run_after(end), layout.blank_run_before(start)
    at_eof = end + after >= len(layout.lines)
    if after and not at_eof:
        end += after          # the blank line(s) that separated it from what follows
    elif before:
        start -= before       # the last job: the file keeps its own ending
    elif after:
        end += after
    return start, end, []


def _insertion(layout: _Layout, after: int | None, job: Job) -> tuple[int, int, list[str]]:
    block = job_block(job).splitlines(keepends=True)
    lines = layout.lines
    if after is None and layout.headers:  # before the first job
        at = layout.own_starts[0]
        return at, at, block + ["\n"]
    at = layout.content_ends[after] if after is not None else len(lines)
    new = block
    if at > 0 and not _is_blank(lines[at - 1]):
        new = ["\n"] + new
    if at < len(lines) and not _is_blank(lines[at]):
        new = new + ["\n"]
    return at, at, new


def _patched(block: list[str], old: Job, new: Job) -> str:
    """One job's table (header to last key) with only the keys that changed rewritten."""
    text = "".join(block)
    doc = tomlkit.parse(text)
    table = doc["jobs"][0]
    was, want = old.to_dict(), new.to_dict()
    added = []
    for key in list(was) + [k for k in want if k not in was]:
        if was.get(key) == want.get(key):
            continue
        present = key in table
        if key not in want:  # back to its default (shell false, no timeout, ...): the line goes
            if present:
                del table[key]
        elif key == "env" and present and isinstance(table["env"], Table):
            _patch_table(table["env"], dict(was.get("env") or {}), dict(want["env"]))
        elif present:
            table[key] = _toml_value(want[key])
        else:
            added.append(_key_line(key, want[key]))
    result = doc.as_string()
    if added:
        result = _add_lines(result, added)
    return result


def _patch_table(table: Table, was: dict[str, str], want: dict[str, str]) -> None:
    for key in was:
        if key not in want and key in table:
            del table[key]
    for key, value in want.items():
        if was.get(key) != value:
            if key in table:
                table[key] = value
            else:
                table.add(key, value)


def _add_lines(text: str, added: list[str]) -> str:
    """New key lines at the end of the job's own keys: before its first sub-table ([jobs.env])."""
    doc = tomlkit.parse(text)
    table = doc["jobs"][0]
    subtables = [item for key, item in table.value.body if key is not None and isinstance(item, Table)]
    if not subtables:
        return text + "".join(added)
    at = min(_offsets_in(doc, subtables, text))
    while at > 0 and text[:at].endswith("\n\n"):
        at -= 1  # before the blank line that leads into the sub-table
    return text[:at] + "".join(added) + text[at:]


# -- JSON ---------------------------------------------------------------------------------------------


RUN_STATE_KEYS = ("last_run", "last_status", "error_count")


def edit_json(text: str, old: Config, new: Config, state: Mapping[str, Mapping[str, Any]] | None) -> str:
    """A spec-format JSON config changed in place: every key keeps its position, new keys come last."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise CantEdit(str(e)) from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or len(data["jobs"]) != len(old.jobs):
        raise CantEdit("the jobs list is not where it is expected")
    entries = data["jobs"]
    jobs: list[Any] = []
    for i, j in pair_jobs(old.jobs, new.jobs):
        if j is None:
            continue
        job = new.jobs[j]
        want = job.to_dict()
        if i is None or not isinstance(entries[i], dict):
            entry = dict(want)
        else:
            entry = entries[i]
            was = old.jobs[i].to_dict()
            for key in was:
                if key not in want:
                    entry.pop(key, None)
            for key, value in want.items():
                if was.get(key) != value or key not in entry:
                    entry[key] = value
        js = (state or {}).get(job.name, {})
        for key in RUN_STATE_KEYS:
            entry[key] = js.get(key, 0 if key == "error_count" else None)
        jobs.append(entry)
    data["jobs"] = jobs
    if new.settings != old.settings:
        settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
        defaults = type(new.settings)().to_dict()  # config.Settings, not imported: config imports this module
        for key, value in new.settings.to_dict().items():
            if key in settings or value != defaults[key]:
                settings[key] = value
        data["settings"] = settings
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
