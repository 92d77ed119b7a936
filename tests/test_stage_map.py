"""Stage Map parsing, graph rules, grouping, rendering, and hostile input."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okstra_engine.errors import OkstraError
from okstra_engine.stage_map import (
    Stage,
    StageMap,
    load_stage_map,
    parse_stage_map_json,
    parse_stage_map_markdown,
    render_stage_map_table,
    validate_graph,
)

PLAN_EXAMPLE = """\
# Plan

Some prose.

## Stage Map
| Stage | Title                  | Depends on | Group |
|-------|------------------------|------------|-------|
| 1     | Schema and models      | -          | A     |
| 2     | Importer               | 1          | B     |
| 3     | Exporter               | 1          | B     |
| 4     | CLI over both          | 2, 3       | C     |

## Risks
none
"""

NO_GROUP = """\
## Stage Map
| Stage | Title             | Depends on |
|-------|-------------------|------------|
| 1     | Schema and models | -          |
| 2     | Importer          | 1          |
| 3     | Exporter          | 1          |
| 4     | CLI over both     | 2, 3       |
"""


def table(*rows: str, header: str = "| Stage | Title | Depends on |") -> str:
    return "\n".join(["## Stage Map", header, "|---|---|---|", *rows]) + "\n"


def fails(text: str, *needles: str, parse=parse_stage_map_markdown) -> OkstraError:
    with pytest.raises(OkstraError) as info:
        parse(text, "plan.md")
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert info.value.how, "every error says how to fix it"
    return info.value


# ---------------------------------------------------------------------------- good tables


def test_spec_example_with_groups() -> None:
    m = parse_stage_map_markdown(PLAN_EXAMPLE, "plan.md")
    assert [(s.stage, s.title, s.depends_on, s.group) for s in m.stages] == [
        (1, "Schema and models", [], "A"),
        (2, "Importer", [1], "B"),
        (3, "Exporter", [1], "B"),
        (4, "CLI over both", [2, 3], "C"),
    ]
    assert m.v == 1
    assert m.groups() == {"A": [1], "B": [2, 3], "C": [4]}
    assert m.group_of(3) == "B"
    assert m.depth() == {1: 0, 2: 1, 3: 1, 4: 2}
    assert m.dependents(1) == [2, 3]
    assert m.dependents(4) == []
    assert set(m.by_number()) == {1, 2, 3, 4}


def test_default_groups_are_depth_levels() -> None:
    m = parse_stage_map_markdown(NO_GROUP, "plan.md")
    assert all(s.group is None for s in m.stages)
    assert [m.group_of(n) for n in (1, 2, 3, 4)] == ["L1", "L2", "L2", "L3"]
    assert m.groups() == {"L1": [1], "L2": [2, 3], "L3": [4]}
    assert list(m.groups()) == ["L1", "L2", "L3"]


def test_groups_ordered_by_min_depth_then_name() -> None:
    m = StageMap(
        stages=[
            Stage(stage=1, title="a", group="Z"),
            Stage(stage=2, title="b", group="Y"),
            Stage(stage=3, title="c", depends_on=[1], group="A"),
            Stage(stage=4, title="d", depends_on=[3]),
        ]
    )
    assert list(m.groups().items()) == [("Y", [2]), ("Z", [1]), ("A", [3]), ("L3", [4])]


def test_header_case_aliases_and_empty_depends() -> None:
    text = table(
        "| `3` | Third | none |",
        "| 10 | Tenth | 3,7 |",
        "| 7 | Seventh |  |",
        "| 12 | Twelfth | — |",
        header="|  NO  | TITLE | Dependencies |",
    )
    m = parse_stage_map_markdown(text, "plan.md")
    assert [s.stage for s in m.stages] == [3, 7, 10, 12]  # sorted, non-contiguous
    assert m.by_number()[10].depends_on == [3, 7]
    assert m.by_number()[7].depends_on == []
    assert m.by_number()[12].depends_on == []


@pytest.mark.parametrize("name", ["Stage", "stage", "#", "No", "**Stage**"])
@pytest.mark.parametrize("deps", ["Depends on", "depends_on", "Depends", "DEPENDENCIES"])
def test_header_names(name: str, deps: str) -> None:
    text = table("| 1 | One | - |", header=f"| {name} | Title | {deps} |")
    assert parse_stage_map_markdown(text, "plan.md").stages[0].title == "One"


def test_group_dash_or_empty_is_no_group_and_extra_columns_ignored() -> None:
    text = "\n".join(
        [
            "### stage map   ",
            "Prose between heading and table is fine.",
            "",
            "| Stage | Owner | Title | Depends on | Group |",
            "|:--|---|:-:|--:|---|",
            "| 1 | ann | One | - | - |",
            "| 2 | bob | Two | 1 |  |",
            "| 3 | cat | Three | 1 | X |",
            "after the table",
            "| 9 | not | part | of it |",
        ]
    )
    m = parse_stage_map_markdown(text, "plan.md")
    assert [s.group for s in m.stages] == [None, None, "X"]
    assert m.group_of(2) == "L2"
    assert [s.stage for s in m.stages] == [1, 2, 3]


def test_escaped_pipe_in_title() -> None:
    m = parse_stage_map_markdown(table(r"| 1 | Read a \| b | - |"), "plan.md")
    assert m.stages[0].title == "Read a | b"


def test_crlf_line_endings() -> None:
    m = parse_stage_map_markdown(PLAN_EXAMPLE.replace("\n", "\r\n"), "plan.md")
    assert m == parse_stage_map_markdown(PLAN_EXAMPLE, "plan.md")
    fails(table("| 1 | A | - |", "| 1 | B | - |").replace("\n", "\r\n"), "line 5")


def test_fenced_example_is_not_the_stage_map() -> None:
    text = "```\n" + NO_GROUP + "```\n\n" + PLAN_EXAMPLE
    assert parse_stage_map_markdown(text, "plan.md").stages[0].group == "A"


# ---------------------------------------------------------------------------- errors


def test_duplicate_stage_names_number_and_lines() -> None:
    fails(
        table("| 1 | A | - |", "| 2 | B | 1 |", "| 2 | C | 1 |"), "plan.md", "line 6", "stage 2 appears twice", "line 5"
    )


def test_self_dependency() -> None:
    fails(table("| 1 | A | - |", "| 2 | B | 2 |"), "line 5", "stage 2 depends on itself")


def test_unknown_dependency() -> None:
    fails(
        table("| 1 | A | - |", "| 2 | B | 1 |", "| 3 | C | 1 |", "| 4 | D | 2, 9 |"),
        "plan.md: line 7",
        "stage 4 depends on unknown stage 9",
    )


def test_cycle_names_the_path() -> None:
    fails(table("| 1 | A | 2 |", "| 2 | B | 1 |"), "stage cycle: 1 -> 2 -> 1")
    err = fails(
        table("| 5 | A | - |", "| 6 | B | 8 |", "| 7 | C | 6 |", "| 8 | D | 7, 5 |"), "stage cycle: 6 -> 8 -> 7 -> 6"
    )
    assert "5" not in err.what.split("stage cycle:")[1].split("(")[0]


def test_long_cycle_is_found_without_recursion() -> None:
    n = 10_000
    stages = [Stage(stage=i, title="t", depends_on=[i % n + 1]) for i in range(1, n + 1)]
    with pytest.raises(OkstraError, match="stage cycle: 1 -> 2 -> 3"):
        StageMap(stages=stages)


def test_long_chain_depth_is_iterative() -> None:
    n = 10_000
    m = StageMap(stages=[Stage(stage=i, title="t", depends_on=[i - 1] if i > 1 else []) for i in range(n, 0, -1)])
    depth = m.depth()
    assert depth[1] == 0 and depth[n] == n - 1
    assert m.group_of(n) == f"L{n}"


@pytest.mark.parametrize(
    "header, missing",
    [
        ("| Title | Depends on |", "Stage"),
        ("| Stage | Depends on |", "Title"),
        ("| Stage | Title |", "Depends on"),
    ],
)
def test_missing_column(header: str, missing: str) -> None:
    fails(f"## Stage Map\n{header}\n|---|---|\n| 1 | x |\n", f"no '{missing}' column", "line 2")


def test_missing_heading() -> None:
    err = fails("# Plan\n| Stage | Title | Depends on |\n", "has no '## Stage Map' table")
    assert "## Stage Map" in err.how


def test_heading_without_table_and_table_in_next_section() -> None:
    fails(
        "## Stage Map\nnothing here\n## Other\n| Stage | Title | Depends on |\n|--|--|--|\n| 1 | a | - |\n",
        "line 1",
        "no table",
    )


def test_two_stage_map_headings() -> None:
    fails(NO_GROUP + "\n" + NO_GROUP, "more than one")


def test_empty_table() -> None:
    fails("## Stage Map\n| Stage | Title | Depends on |\n|---|---|---|\n", "no stages", "line 2")


@pytest.mark.parametrize(
    "row, needle",
    [
        ("| x | B | 1 |", "stage 'x'"),
        ("| 0 | B | 1 |", "stage '0'"),
        ("| -2 | B | 1 |", "stage '-2'"),
        ("| 2 | B | one |", "dependency 'one'"),
        ("| 2 | B | 1, 0 |", "dependency '0'"),
        ("| 2 | B | 1 | 4 |", "4 cells"),
        ("| 2 | B |", "2 cells"),
        ("| 2 |  | 1 |", "Title"),
        ("| 9999999999 | B | 1 |", "not a stage number"),
    ],
)
def test_bad_cell_names_its_line(row: str, needle: str) -> None:
    fails(table("| 1 | A | - |", row), "plan.md: line 5", needle)


# ---------------------------------------------------------------------------- JSON


def test_json_ok() -> None:
    text = json.dumps(
        {
            "stages": [
                {"stage": 4, "title": "CLI", "depends_on": [2, 3], "group": "C"},
                {"stage": 1, "title": "Schema", "depends_on": [], "group": "A"},
                {"stage": 2, "title": "Importer", "depends_on": [1]},
                {"stage": 3, "title": "Exporter", "depends_on": [1], "note": "kept"},
            ]
        }
    )
    m = parse_stage_map_json(text, "stage-map.json")
    assert [s.stage for s in m.stages] == [1, 2, 3, 4]
    assert m.by_number()[3].model_extra == {"note": "kept"}
    assert m.group_of(2) == "L2"


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"stages": [{"stage": 1, "title": "a", "depends_on": ["x"]}]}, "stages.0.depends_on.0"),
        ({"stages": [{"stage": 0, "title": "a"}]}, "stages.0.stage"),
        ({"stages": [{"stage": True, "title": "a"}]}, "stages.0.stage"),
        ({"stages": [{"stage": 1}]}, "stages.0.title"),
        ({"stages": [{"stage": 1, "title": "a\nb"}]}, "stages.0.title"),
        ({"stages": [{"stage": 1, "title": "a", "depends": [2]}]}, "depends_on"),
        ({"stages": []}, "stages"),
        ({}, "stages"),
        ([1, 2], "document"),
    ],
)
def test_json_bad_field(doc: object, needle: str) -> None:
    err = fails(json.dumps(doc), "plan.md", needle, parse=parse_stage_map_json)
    assert "field" in err.what or needle == "document"


def test_json_graph_errors() -> None:
    doc = {"stages": [{"stage": 1, "title": "a", "depends_on": [2]}, {"stage": 2, "title": "b", "depends_on": [1]}]}
    fails(json.dumps(doc), "plan.md", "stage cycle: 1 -> 2 -> 1", parse=parse_stage_map_json)
    doc = {"stages": [{"stage": 1, "title": "a"}, {"stage": 1, "title": "b"}]}
    fails(json.dumps(doc), "stage 1 appears twice", parse=parse_stage_map_json)


@pytest.mark.parametrize("text", ["", "{", "[" * 100_000, "1" * 5000, '{"stages": NaN}', "\ufeff{"])
def test_json_not_json(text: str) -> None:
    fails(text, "plan.md", parse=parse_stage_map_json)


def test_validate_graph_direct() -> None:
    validate_graph([Stage(stage=1, title="a")], "x")
    with pytest.raises(OkstraError, match="x: stage 1 depends on unknown stage 3"):
        validate_graph([Stage(stage=1, title="a", depends_on=[3])], "x")


def test_unknown_stage_lookup_is_okstra_error() -> None:
    m = parse_stage_map_markdown(NO_GROUP, "plan.md")
    with pytest.raises(OkstraError, match="stage 9 is not in the Stage Map"):
        m.group_of(9)
    with pytest.raises(OkstraError):
        m.dependents(9)


# ---------------------------------------------------------------------------- render


def test_render_round_trip_spec_example() -> None:
    for text in (PLAN_EXAMPLE, NO_GROUP):
        m = parse_stage_map_markdown(text, "plan.md")
        rendered = render_stage_map_table(m)
        assert rendered.startswith("## Stage Map\n")
        assert rendered.endswith("\n")
        assert parse_stage_map_markdown(rendered, "again") == m
    assert "Group" not in render_stage_map_table(parse_stage_map_markdown(NO_GROUP, "plan.md"))


def test_render_round_trip_awkward_text() -> None:
    titles = ["a | b", "ends with \\", "C:\\src\\x", "\\|", "\\\\|x\\", "`code`", "— dash", "- leading dash"]
    m = StageMap(stages=[Stage(stage=i + 1, title=t, group=(t if i % 2 else None)) for i, t in enumerate(titles)])
    assert parse_stage_map_markdown(render_stage_map_table(m), "x") == m


# ---------------------------------------------------------------------------- files


def test_load_prefers_json(tmp_path) -> None:
    (tmp_path / "plan.md").write_text(PLAN_EXAMPLE, encoding="utf-8")
    assert load_stage_map(tmp_path).stages[0].group == "A"
    (tmp_path / "stage-map.json").write_text(
        json.dumps({"stages": [{"stage": 7, "title": "only", "depends_on": []}]}), encoding="utf-8"
    )
    assert [s.stage for s in load_stage_map(tmp_path).stages] == [7]


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(OkstraError, match="neither stage-map.json nor plan.md"):
        load_stage_map(tmp_path)
    (tmp_path / "plan.md").write_text("# no map\n", encoding="utf-8")
    with pytest.raises(OkstraError, match="plan.md has no '## Stage Map' table"):
        load_stage_map(tmp_path)
    (tmp_path / "stage-map.json").write_bytes(b"\xff\xfe")
    with pytest.raises(OkstraError, match="stage-map.json"):
        load_stage_map(tmp_path)


def test_load_accepts_bom(tmp_path) -> None:
    (tmp_path / "plan.md").write_text("\ufeff" + NO_GROUP, encoding="utf-8")
    assert len(load_stage_map(tmp_path).stages) == 4


def test_hundred_stages_parse_fast() -> None:
    m = StageMap(
        stages=[
            Stage(stage=i, title=f"stage {i}", depends_on=[j for j in (i - 1, i - 3) if j > 0]) for i in range(1, 101)
        ]
    )
    text = render_stage_map_table(m)
    parse_stage_map_markdown(text, "x")
    start = time.perf_counter()
    for _ in range(20):
        parse_stage_map_markdown(text, "x")
    assert (time.perf_counter() - start) / 20 < 0.02  # generous: CI machines are slow


# ---------------------------------------------------------------------------- properties

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = st.sampled_from(
    [
        "|",
        "|",
        "|",
        "-",
        "---",
        " ",
        ",",
        "\n",
        "\n",
        "## Stage Map",
        "## stage map\n",
        "### Stage Map  \n",
        "Stage",
        "Title",
        "Depends on",
        "Group",
        "#",
        "No",
        "none",
        "—",
        "`",
        "\\",
        "\\|",
        "```\n",
        "~~~",
        "0",
        "1",
        "2",
        "3",
        "9",
        "12",
        "99999999999",
        "-1",
        "\r\n",
        "\t",
        "é",
        "\u2028",
        "\x00",
        "| Stage | Title | Depends on | Group |\n",
        "|---|---|---|---|\n",
        "| 1 | a | - | A |\n",
        "| 2 | b | 1, 3 | |\n",
    ]
)
table_ish = st.lists(FRAGMENTS, max_size=60).map("".join)


def mostly(good, bad, one_in: int = 10):
    """Usually `good`: hostile input that still gets past the first checks to the deeper rules."""
    # sampled_from picks near-uniformly; st.integers leans on its bounds and would
    # pick `bad` far more often than one time in `one_in`.
    return st.sampled_from([good] * (one_in - 1) + [bad]).flatmap(lambda strategy: strategy)


NUMBER_CELLS = mostly(
    st.sampled_from(["1", "2", "3", " 4 ", "`5`", "6"]), st.sampled_from(["", "0", "-1", "x", "12345678901", "³"]), 40
)
DEPS_CELLS = mostly(
    st.lists(st.integers(1, 7).map(str), max_size=3).map(", ".join) | st.sampled_from(["-", "—", "none", "2,"]),
    st.sampled_from(["0", "1,,2", "a", "1 2"]),
    40,
)
TEXT_CELLS = mostly(st.text(alphabet="ab -`—\\", max_size=6).map("t".__add__), st.sampled_from(["", "\\|", "x|y"]), 40)
HEADERS = [
    ["Stage", "Title", "Depends on"],
    ["Stage", "Title", "Depends on", "Group"],
    ["#", "Extra", "title", "depends"],
]


@st.composite
def tables(draw) -> str:
    """A heading, a header and rows of plausible cells: reaches the row and graph rules."""
    header = draw(
        mostly(st.sampled_from(HEADERS), st.sampled_from([["Stage", "Title"], ["Stage", "Stage", "Title", "Depends"]]))
    )
    kinds = {"stage": NUMBER_CELLS, "#": NUMBER_CELLS, "depends on": DEPS_CELLS, "depends": DEPS_CELLS}
    rows = []
    for row in range(draw(st.integers(0, 7))):
        # Mostly distinct numbers, so duplicates do not hide the dependency rules.
        kinds["stage"] = kinds["#"] = mostly(st.just(f" {row + 1} "), NUMBER_CELLS, 4)
        cells = [draw(kinds.get(h.lower(), TEXT_CELLS)) for h in header]
        if draw(mostly(st.just(False), st.just(True), 40)):
            cells = cells[:-1] if draw(st.booleans()) else [*cells, "extra"]
        # Without a closing pipe an empty last cell is indistinguishable from none.
        closing = draw(st.sampled_from([" |", ""])) if cells and cells[-1].strip() else " |"
        rows.append("| " + " | ".join(cells) + closing)
    lines = [draw(st.sampled_from(["", "# Plan", "text", "```\n## Stage Map\n```"])), "## Stage Map"]
    lines.append("| " + " | ".join(header) + " |")
    if draw(st.integers(0, 4)):
        lines.append("|" + "---|" * len(header))
    return "\n".join(lines + rows + [draw(st.sampled_from(["", "after", "## Next", "\n| 9 | x | - |"]))])


def only_okstra_errors(parse, text: str) -> None:
    try:
        result = parse(text, "fuzz")
    except OkstraError as exc:
        assert "fuzz" in exc.what and exc.how
        return
    # Whatever parses must survive the round trip through the rendered table.
    assert isinstance(result, StageMap) and result.stages
    again = parse_stage_map_markdown(render_stage_map_table(result), "again")
    assert [known_fields(s) for s in again.stages] == [known_fields(s) for s in result.stages]


def known_fields(stage: Stage) -> tuple:
    return stage.stage, stage.title, stage.depends_on, stage.group


@BOUNDED
@given(st.text(max_size=400))
def test_markdown_any_text(text: str) -> None:
    only_okstra_errors(parse_stage_map_markdown, text)


@BOUNDED
@given(table_ish | tables())
def test_markdown_table_ish_text(text: str) -> None:
    only_okstra_errors(parse_stage_map_markdown, text)


@BOUNDED
@given(st.text(max_size=400) | table_ish)
def test_json_any_text(text: str) -> None:
    only_okstra_errors(parse_stage_map_json, text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
stage_keys = st.sampled_from(["stage", "title", "depends_on", "group", "depends", "x"])
stage_fields = {
    "stage": mostly(st.integers(1, 6), st.integers(-1, 0) | json_values),
    "title": mostly(st.text(max_size=8), json_values),
    "depends_on": mostly(
        st.lists(st.integers(1, 6), max_size=3), st.lists(st.integers(-1, 6), max_size=3) | json_values
    ),
    "group": mostly(st.none() | st.sampled_from(["", "-", "A", " B "]), json_values),
}
near_stage = st.one_of(
    st.fixed_dictionaries(
        {k: stage_fields[k] for k in ("stage", "title")}, optional={k: stage_fields[k] for k in ("depends_on", "group")}
    ),
    st.fixed_dictionaries({}, optional=stage_fields),
    st.dictionaries(stage_keys, json_values, max_size=5),
)
near_doc = st.fixed_dictionaries({"stages": st.lists(near_stage, max_size=6)}, optional={"v": json_values})


@BOUNDED
@given(json_values | near_doc)
def test_json_any_value(value: object) -> None:
    only_okstra_errors(parse_stage_map_json, json.dumps(value))


line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=15
).filter(lambda t: t.strip() not in ("", "-", "\u2013", "\u2014"))


@st.composite
def dags(draw) -> StageMap:
    n = draw(st.integers(1, 25))
    numbers = sorted(draw(st.sets(st.integers(1, 10_000), min_size=n, max_size=n)))
    with_groups = draw(st.booleans())
    stages = []
    for i, number in enumerate(numbers):
        deps = draw(st.lists(st.sampled_from(numbers[:i]), unique=True, max_size=4)) if i else []
        group = draw(st.none() | st.sampled_from(["A", "B", "x|y", "g\\"])) if with_groups else None
        stages.append(Stage(stage=number, title=draw(line_text), depends_on=deps, group=group))
    draw(st.randoms()).shuffle(stages)
    return StageMap(stages=stages)


@BOUNDED
@given(dags())
def test_random_dags_round_trip_and_depth(m: StageMap) -> None:
    assert [s.stage for s in m.stages] == sorted(s.stage for s in m.stages)
    assert parse_stage_map_markdown(render_stage_map_table(m), "x") == m
    assert parse_stage_map_json(m.model_dump_json(), "x") == m
    depth = m.depth()
    for s in m.stages:
        assert depth[s.stage] == (1 + max(depth[d] for d in s.depends_on) if s.depends_on else 0)
        for d in s.depends_on:
            assert s.stage in m.dependents(d)
    grouped = m.groups()
    assert sorted(n for members in grouped.values() for n in members) == sorted(depth)
    assert all(n in grouped[m.group_of(n)] for n in depth)
