"""The plan's Stage Map: which stages exist, what each waits for, how they are grouped.

Read from a `## Stage Map` Markdown table in `plan.md` or from `stage-map.json` beside
it, and checked to be a DAG. Every failure, on any input text, is an `OkstraError` that
names the file (and, for Markdown, the line), so a hand-written plan never produces a
traceback.

Rules beyond the table's shape:

- Stage numbers are positive and at most 999,999,999, which keeps them printable
  (Python refuses to print ints of more than 4,300 digits) and usable in branch and
  file names. They need not be contiguous.
- Titles and groups are trimmed and must fit on one line, because a table cell cannot
  hold a line break. A group that is empty, `-` or a dash means "no explicit group",
  in JSON as well as in Markdown, so both forms mean the same thing.
- A dependency listed twice counts once.
- A `## Stage Map` heading inside a code fence is not the Stage Map (plans quote
  examples); two real Stage Map headings are an error rather than a guess.
- Columns other than Stage/Title/Depends on/Group are ignored, and
  `render_stage_map_table` writes only those four: the round trip covers them, not
  extra JSON fields or `v`.
- `dependents(n)` lists direct dependents only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .documents import Doc
from .errors import OkstraError, describe_validation_error

MAX_STAGE_NUMBER = 999_999_999
_MAX_DIGITS = len(str(MAX_STAGE_NUMBER))

StageNumber = Annotated[int, Field(strict=True, gt=0, le=MAX_STAGE_NUMBER)]

_NO_GROUP = frozenset({"", "-", "\u2013", "\u2014"})
_NO_DEPS = frozenset({"", "-", "\u2013", "\u2014", "none", "n/a"})
# Keys people reach for instead of `depends_on`; with extra="allow" they would be kept
# silently as unknown fields and the stage would look dependency-free.
_DEPENDS_MISSPELLINGS = ("depends", "dependencies", "dependsOn", "depends on", "deps")

_HEADING = re.compile(r"^ {0,3}#{2,3}[ \t]+stage[ \t]+map[ \t]*#*[ \t]*$", re.IGNORECASE)
_ANY_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_SPACES = re.compile(r"[\s_-]+")

_COLUMN_ALIASES = {
    "stage": "stage",
    "#": "stage",
    "no": "stage",
    "no.": "stage",
    "title": "title",
    "depends on": "depends_on",
    "depends": "depends_on",
    "dependencies": "depends_on",
    "group": "group",
}
_COLUMN_LABELS = {"stage": "Stage", "title": "Title", "depends_on": "Depends on", "group": "Group"}

_ADD_TABLE_HOW = (
    "add a '## Stage Map' heading followed by a table with the columns "
    "| Stage | Title | Depends on | Group | (Group is optional), "
    "or put a stage-map.json beside plan.md"
)


def _one_line(value: str, what: str) -> str:
    value = value.strip()
    if "\n" in value or "\r" in value:
        raise ValueError(f"a stage {what} must fit on one line")
    return value


class Stage(Doc):
    model_config = ConfigDict(extra="allow")

    stage: StageNumber
    title: str
    depends_on: list[StageNumber] = []
    group: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_misspelled_depends(cls, data: Any) -> Any:
        if isinstance(data, dict) and "depends_on" not in data:
            for key in _DEPENDS_MISSPELLINGS:
                if key in data:
                    raise ValueError(f"write the dependencies as 'depends_on', not '{key}'")
        return data

    @field_validator("title")
    @classmethod
    def _title_is_one_line(cls, value: str) -> str:
        value = _one_line(value, "title")
        if not value:
            raise ValueError("a stage needs a title")
        return value

    @field_validator("group")
    @classmethod
    def _group_is_one_line(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _one_line(value, "group")
        return None if value in _NO_GROUP else value

    @field_validator("depends_on")
    @classmethod
    def _deps_once(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))


class StageMap(Doc):
    """Validated stages, sorted by number. Graph errors raise `OkstraError` directly.

    Pass `context={"source": ..., "lines": {index: line}}` to `model_validate` to have
    graph errors name the file and the rows; `lines` is keyed by position in `stages`
    before sorting.
    """

    model_config = ConfigDict(extra="allow")

    v: int = 1
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph_holds(self, info: ValidationInfo) -> StageMap:
        context = info.context if isinstance(info.context, Mapping) else {}
        if context.get("graph") is False:  # a draft: its stages as written, checked by the caller
            return self
        source = str(context.get("source", "Stage Map"))
        lines = context.get("lines")
        validate_graph(self.stages, source, lines if isinstance(lines, Mapping) else None)
        self.stages = sorted(self.stages, key=lambda s: s.stage)
        return self

    def by_number(self) -> dict[int, Stage]:
        return {s.stage: s for s in self.stages}

    def depth(self) -> dict[int, int]:
        """0 for a stage with no dependencies, else 1 + the deepest dependency."""
        depths, cycle = _depths_or_cycle({s.stage: s.depends_on for s in self.stages})
        if cycle is not None:
            # Only reachable if the model was mutated after validation.
            raise OkstraError(f"stage cycle: {_arrow(cycle)}", "remove one of these dependencies")
        return depths

    def group_of(self, n: int) -> str:
        """The explicit group, else `L<depth+1>` so same-depth stages go together."""
        stage = self._stage(n)
        if stage.group is not None:
            return stage.group
        return f"L{self.depth()[n] + 1}"

    def group_names(self) -> dict[int, str]:
        """Every stage's group in one pass (group_of for each would redo the depths)."""
        depths = self.depth()
        return {s.stage: s.group if s.group is not None else f"L{depths[s.stage] + 1}" for s in self.stages}

    def groups(self) -> dict[str, list[int]]:
        """Group name -> its stage numbers, shallowest group first, then by name."""
        depths = self.depth()
        members: dict[str, list[int]] = {}
        for n, name in self.group_names().items():
            members.setdefault(name, []).append(n)
        order = sorted(members, key=lambda g: (min(depths[n] for n in members[g]), g))
        return {g: sorted(members[g]) for g in order}

    def dependents(self, n: int) -> list[int]:
        """Stages that list `n` directly in `depends_on`, sorted."""
        self._stage(n)
        return sorted(s.stage for s in self.stages if n in s.depends_on)

    def _stage(self, n: int) -> Stage:
        for s in self.stages:
            if s.stage == n:
                return s
        known = ", ".join(str(s.stage) for s in self.stages)
        raise OkstraError(f"stage {n} is not in the Stage Map", f"use one of the stages: {known}")


# ---------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class GraphProblem:
    """What keeps a Stage Map from being a DAG, on one row: `index` is the row's
    position in the stages as written."""

    index: int
    stage: int
    what: str
    how: str


def validate_graph(stages: Sequence[Stage], source: str, lines: Mapping[int, int] | None = None) -> None:
    """Raise `OkstraError` unless `stages` form a DAG with unique numbers (the first of
    `graph_problems`)."""
    problems = graph_problems(stages, source, lines)
    if problems:
        raise OkstraError(problems[0].what, problems[0].how)


def graph_problems(stages: Sequence[Stage], source: str, lines: Mapping[int, int] | None = None) -> list[GraphProblem]:
    """Every row that keeps `stages` from being a DAG with unique numbers: a number seen
    twice, a stage that depends on itself or on an unknown stage, and each row of the
    first cycle. `lines` maps a position in `stages` to its Markdown line, so errors can
    point at it."""

    def where(index: int) -> str:
        if lines is not None and index in lines:
            return f"{source}: line {lines[index]}"
        return source

    problems: list[GraphProblem] = []
    first_at: dict[int, int] = {}
    for index, s in enumerate(stages):
        if s.stage in first_at:
            earlier = first_at[s.stage]
            also = f" (also line {lines[earlier]})" if lines is not None and earlier in lines else ""
            problems.append(
                GraphProblem(
                    index,
                    s.stage,
                    f"{where(index)}: stage {s.stage} appears twice{also}",
                    "give every stage its own number",
                )
            )
            continue
        first_at[s.stage] = index

    for index, s in enumerate(stages):
        for dep in s.depends_on:
            if dep == s.stage:
                problems.append(
                    GraphProblem(
                        index,
                        s.stage,
                        f"{where(index)}: stage {s.stage} depends on itself",
                        f"remove {s.stage} from the dependencies of stage {s.stage}",
                    )
                )
            elif dep not in first_at:
                problems.append(
                    GraphProblem(
                        index,
                        s.stage,
                        f"{where(index)}: stage {s.stage} depends on unknown stage {dep}",
                        f"add stage {dep} to the Stage Map or remove it from the dependencies of stage {s.stage}",
                    )
                )
    if problems:
        return problems

    _, cycle = _depths_or_cycle({s.stage: s.depends_on for s in stages})
    if cycle is not None:
        at = ""
        if lines is not None:
            rows = sorted({lines[first_at[n]] for n in cycle if first_at[n] in lines})
            at = f" (lines {', '.join(map(str, rows))})" if rows else ""
        what = f"{source}: stage cycle: {_arrow(cycle)}{at}"
        how = "each arrow reads 'depends on'; remove one of these dependencies so the stages form a DAG"
        problems += [GraphProblem(first_at[n], n, what, how) for n in dict.fromkeys(cycle)]
    return problems


def _depths_or_cycle(deps: Mapping[int, Sequence[int]]) -> tuple[dict[int, int], list[int] | None]:
    """Depth of every stage, or a cycle as `[a, b, ..., a]`.

    One iterative DFS does both: a stage's depth is known once all its dependencies are
    finished, and meeting a stage still on the path closes a cycle. Iterative so a
    10,000-stage chain does not hit the recursion limit. Unknown dependencies are skipped
    (validate_graph reports them first).
    """
    depths: dict[int, int] = {}
    on_path: dict[int, int] = {}  # stage -> position in path
    path: list[int] = []
    for root in sorted(deps):
        if root in depths:
            continue
        stack = [(root, iter(deps[root]))]
        on_path[root] = 0
        path.append(root)
        while stack:
            node, pending = stack[-1]
            for dep in pending:
                if dep in depths or dep not in deps:
                    continue
                if dep in on_path:
                    core = path[on_path[dep] :]
                    start = core.index(min(core))
                    core = core[start:] + core[:start]
                    return depths, [*core, core[0]]
                on_path[dep] = len(path)
                path.append(dep)
                stack.append((dep, iter(deps[dep])))
                break
            else:
                stack.pop()
                path.pop()
                del on_path[node]
                depths[node] = 1 + max((depths[d] for d in deps[node] if d in depths), default=-1)
    return depths, None


def _arrow(cycle: Sequence[int]) -> str:
    if len(cycle) > 21:
        # A cycle through thousands of stages is unreadable in full; its ends and its
        # length say enough to find it.
        head = " -> ".join(map(str, cycle[:10]))
        tail = " -> ".join(map(str, cycle[-10:]))
        return f"{head} -> ... -> {tail} ({len(cycle) - 1} stages)"
    return " -> ".join(map(str, cycle))


# ---------------------------------------------------------------------------- JSON


def parse_stage_map_json(text: str, source: str, *, graph: bool = True) -> StageMap:
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise OkstraError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            'fix the JSON; the form is {"stages": [{"stage": 1, "title": "...", "depends_on": [], "group": "A"}]}',
        ) from None
    except (ValueError, RecursionError) as exc:
        # Integers too long to convert, or nesting too deep for the decoder.
        raise OkstraError(f"{source}: not valid JSON ({type(exc).__name__}: {exc})", "fix the JSON") from None
    return _validate_document(data, source, graph)


def _validate_document(data: Any, source: str, graph: bool = True) -> StageMap:
    try:
        return StageMap.model_validate(data, context={"source": source, "graph": graph})
    except ValidationError as exc:
        raise OkstraError(
            describe_validation_error(exc, source),
            'fix that field; stages are {"stage": N, "title": "...", "depends_on": [N, ...], "group": "..."}',
        ) from None
    except RecursionError:
        raise OkstraError(f"{source}: the document is nested too deeply", "simplify the JSON") from None


# ---------------------------------------------------------------------------- Markdown


def parse_stage_map_markdown(text: str, source: str) -> StageMap:
    return _parse_markdown(text, source)[0]


def _parse_markdown(text: str, source: str, graph: bool = True) -> tuple[StageMap, dict[int, int]]:
    """The Stage Map of a plan's text and the Markdown line of each row (by position);
    without `graph`, its rows as written, the graph unchecked."""
    # Same line breaks (and so line numbers) as a file read in text mode.
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    heading = _find_heading(lines, source)
    start = _find_table(lines, heading, source)

    header_at = start + 1
    header = _split_row(lines[start])
    columns = _read_header(header, header_at, source)

    index = start + 1
    if index < len(lines) and _is_table_line(lines[index]):
        cells = _split_row(lines[index])
        if cells and all(_SEPARATOR_CELL.match(c) for c in cells):
            index += 1

    stages: list[dict[str, Any]] = []
    row_lines: dict[int, int] = {}
    while index < len(lines) and _is_table_line(lines[index]):
        line_no = index + 1
        cells = _split_row(lines[index])
        if len(cells) != len(header):
            raise OkstraError(
                f"{source}: line {line_no}: the row has {len(cells)} cells, the header {len(header)}",
                "give every row one cell per column; write a '|' inside a cell as '\\|'",
            )
        row_lines[len(stages)] = line_no
        stages.append(_read_row(cells, columns, line_no, source))
        index += 1

    if not stages:
        raise OkstraError(f"{source}: line {header_at}: the Stage Map table has no stages", "add one row per stage")

    # One validation call for all rows is several times faster than one per row; the
    # failing row's line is recovered from the error's location.
    try:
        context = {"source": source, "lines": row_lines, "graph": graph}
        return StageMap.model_validate({"stages": stages}, context=context), row_lines
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc", ())
        if len(loc) >= 2 and loc[0] == "stages" and loc[1] in row_lines:
            field = ".".join(str(p) for p in loc[2:]) or "(row)"
            what = (
                f"{source}: line {row_lines[loc[1]]}: {_COLUMN_LABELS.get(field, field)}: {first.get('msg', 'invalid')}"
            )
        else:
            what = describe_validation_error(exc, source)
        raise OkstraError(what, "fix the cell in that row") from None


def _find_heading(lines: list[str], source: str) -> int:
    found: list[int] = []
    fenced: list[int] = []
    fence: str | None = None
    for i, line in enumerate(lines):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            elif _HEADING.match(line):
                fenced.append(i)
            continue
        if opened:
            fence = opened.group(1)
        elif _HEADING.match(line):
            found.append(i)
    if len(found) > 1:
        raise OkstraError(
            f"{source} has more than one '## Stage Map' heading (lines {found[0] + 1} and {found[1] + 1})",
            "keep a single Stage Map section",
        )
    if found:
        return found[0]
    if fenced:
        raise OkstraError(
            f"{source} has no '## Stage Map' table outside a code fence (one is fenced at line {fenced[0] + 1})",
            "take the Stage Map heading and table out of the ``` block",
        )
    raise OkstraError(f"{source} has no '## Stage Map' table", _ADD_TABLE_HOW)


def _find_table(lines: list[str], heading: int, source: str) -> int:
    # Prose may sit between the heading and the table, but the table must be in this
    # section: a table under a later heading is some other table.
    for i in range(heading + 1, len(lines)):
        if _is_table_line(lines[i]):
            return i
        if _ANY_HEADING.match(lines[i]):
            break
    raise OkstraError(
        f"{source}: line {heading + 1}: the '## Stage Map' section has no table",
        "put a table | Stage | Title | Depends on | Group | right under the heading",
    )


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def _split_row(line: str) -> list[str]:
    """Cells of a table row; `\\|` is a literal pipe and `\\\\` a literal backslash."""
    line = line.strip()
    if "\\" not in line:
        parts = line.split("|")
        closed = len(line) > 1 and line.endswith("|")
    else:
        parts = []
        buf: list[str] = []
        closed = False
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c == "\\" and i + 1 < n and line[i + 1] in "\\|":
                buf.append(line[i + 1])
                i += 2
                continue
            if c == "|":
                parts.append("".join(buf))
                buf = []
                closed = 0 < i == n - 1
            else:
                buf.append(c)
            i += 1
        parts.append("".join(buf))
    parts = parts[1:]
    if closed:
        parts = parts[:-1]
    return [p.strip() for p in parts]


def _read_header(cells: list[str], line_no: int, source: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, cell in enumerate(cells):
        name = _SPACES.sub(" ", cell.strip("*_` \t")).strip().lower()
        key = _COLUMN_ALIASES.get(name)
        if key is None:
            continue
        if key in columns:
            raise OkstraError(
                f"{source}: line {line_no}: the Stage Map header has two '{_COLUMN_LABELS[key]}' columns",
                "keep one of them",
            )
        columns[key] = i
    for key in ("stage", "title", "depends_on"):
        if key not in columns:
            raise OkstraError(
                f"{source}: line {line_no}: the Stage Map table has no '{_COLUMN_LABELS[key]}' column",
                "use the header | Stage | Title | Depends on | Group | (Group is optional)",
            )
    return columns


def _read_row(cells: list[str], columns: dict[str, int], line_no: int, source: str) -> dict[str, Any]:
    where = f"{source}: line {line_no}"
    raw_stage = cells[columns["stage"]]
    number = _stage_number(raw_stage)
    if number is None:
        raise OkstraError(
            f"{where}: stage {raw_stage!r} is not a stage number",
            f"write a whole number from 1 to {MAX_STAGE_NUMBER}",
        )
    deps: list[int] = []
    raw_deps = cells[columns["depends_on"]]
    if raw_deps.lower() not in _NO_DEPS:
        for item in raw_deps.split(","):
            item = item.strip()
            if not item:
                continue
            dep = _stage_number(item)
            if dep is None:
                raise OkstraError(
                    f"{where}: dependency {item!r} of stage {number} is not a stage number",
                    "list stage numbers separated by commas, or '-' for none",
                )
            deps.append(dep)
    row: dict[str, Any] = {"stage": number, "title": cells[columns["title"]], "depends_on": deps}
    if "group" in columns:
        row["group"] = cells[columns["group"]]
    return row


def _stage_number(cell: str) -> int | None:
    if cell.isdigit() and cell.isascii() and len(cell) <= _MAX_DIGITS:
        value = int(cell)
        return value if value > 0 else None
    digits = cell.strip().strip("`").strip()
    if not digits or len(digits) > _MAX_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    value = int(digits)
    return value if value > 0 else None


# ---------------------------------------------------------------------------- render


def render_stage_map_table(stage_map: StageMap) -> str:
    """`## Stage Map` and its table; `parse_stage_map_markdown` reads it back equal."""
    with_group = any(s.group is not None for s in stage_map.stages)
    header = ["Stage", "Title", "Depends on"] + (["Group"] if with_group else [])
    rows = [header]
    for s in stage_map.stages:
        row = [str(s.stage), _escape(s.title), ", ".join(map(str, s.depends_on)) or "-"]
        if with_group:
            row.append(_escape(s.group) if s.group is not None else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # The space before each '|' also keeps a trailing backslash from escaping it.
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = ["## Stage Map", "", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in rows[1:])
    return "\n".join(out) + "\n"


def _escape(text: str) -> str:
    # Double a backslash only where the parser would otherwise read it as an escape,
    # so ordinary paths like C:\src stay readable.
    out: list[str] = []
    for i, c in enumerate(text):
        if c == "|":
            out.append("\\|")
        elif c == "\\" and i + 1 < len(text) and text[i + 1] in "\\|":
            out.append("\\\\")
        else:
            out.append(c)
    return "".join(out)


# ---------------------------------------------------------------------------- files


def load_stage_map(plan_dir: Path) -> StageMap:
    """`plan_dir/stage-map.json` when it exists, else the table in `plan_dir/plan.md`."""
    json_path = plan_dir / "stage-map.json"
    text = _read(json_path)
    if text is not None:
        return parse_stage_map_json(text, str(json_path))
    plan_path = plan_dir / "plan.md"
    text = _read(plan_path)
    if text is not None:
        return parse_stage_map_markdown(text, str(plan_path))
    raise OkstraError(
        f"{plan_dir} has neither stage-map.json nor plan.md",
        "write a plan.md with a '## Stage Map' table (or a stage-map.json) in the plan run folder",
    )


@dataclass(frozen=True)
class StageMapDraft:
    """A plan's Stage Map as written, for a person to review before it is approved: its
    rows in file order (`stages`), each row's Markdown line (by position; none for
    JSON), what keeps its graph from holding, row by row (`problems`), or why its rows
    cannot be read at all (`error`: then `stages` is empty)."""

    source: str
    stages: list[Stage] = field(default_factory=list)
    lines: dict[int, int] = field(default_factory=dict)
    problems: list[GraphProblem] = field(default_factory=list)
    error: OkstraError | None = None

    @property
    def stage_map(self) -> StageMap | None:
        """The validated Stage Map, None when it does not hold."""
        if self.error is not None or self.problems:
            return None
        return StageMap(stages=sorted(self.stages, key=lambda s: s.stage))


def read_draft(plan_dir: Path) -> StageMapDraft:
    """The Stage Map of the plan in `plan_dir` (as `load_stage_map` finds it), its graph
    checked row by row rather than refused at the first problem."""
    json_path, plan_path = plan_dir / "stage-map.json", plan_dir / "plan.md"
    lines: dict[int, int] = {}
    try:
        text = _read(json_path)
        if text is not None:
            source = str(json_path)
            found = parse_stage_map_json(text, source, graph=False)
        else:
            source = str(plan_path)
            text = _read(plan_path)
            if text is None:
                load_stage_map(plan_dir)  # raises its error: there is no plan
            found, lines = _parse_markdown(text or "", source, graph=False)
    except OkstraError as exc:
        return StageMapDraft(str(plan_dir), error=exc)
    return StageMapDraft(source, found.stages, lines, graph_problems(found.stages, source, lines))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise OkstraError(f"cannot read {path}: {exc}", "make it a readable UTF-8 file") from None
