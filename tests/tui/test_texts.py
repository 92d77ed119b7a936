"""Every word of the TUI comes from prompts/wizard/prompts.<lang>.json, in both languages."""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import okstra_tui
from okstra_engine.resources import wizard_texts_file

TUI = Path(okstra_tui.__file__).parent
LANGS = ("en", "ko")


def _texts(lang: str) -> dict[str, str]:
    return json.loads(wizard_texts_file(lang).read_text(encoding="utf-8"))


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_en_and_ko_have_the_same_keys_and_fields() -> None:
    en, ko = _texts("en"), _texts("ko")
    assert set(en) == set(ko), f"only in en: {sorted(set(en) - set(ko))}, only in ko: {sorted(set(ko) - set(en))}"
    for key in en:
        assert _fields(en[key]) == _fields(ko[key]), key
        assert ko[key].strip(), key


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(TUI.rglob("*.py"))]


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        # attribute docstrings: a string expression right after an assignment
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else []:
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                ids.add(id(stmt.value))
    return ids


def test_every_text_key_used_exists() -> None:
    en = _texts("en")
    used: set[str] = set()
    prefixes: set[str] = set()
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "t" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    used.add(arg.value)
                elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                    prefixes.add(arg.values[0].value)
                elif isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant):
                    prefixes.add(arg.left.value)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Binding":
                texts = [a for a in node.args[2:3]] + [
                    k.value for k in node.keywords if k.arg in ("description", "tooltip")
                ]
                for arg in texts:
                    assert isinstance(arg, ast.Constant), f"{path.name}: binding text must be a text key"
                    used.add(arg.value)
    missing = sorted(k for k in used if k not in en)
    assert not missing, missing
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in en), prefix
    # the keys the code builds from data
    from okstra_engine.runs import PHASES
    from okstra_tui.states import ORDER

    for phase in PHASES:
        assert f"phase.name.{phase}" in en and f"phase.about.{phase}" in en
    for state in ORDER:
        assert f"state.{state}" in en and f"legend.{state}" in en
    from okstra_engine.reconcile import KINDS

    assert all(f"kind.{kind}" in en for kind in KINDS)


_WORDS = re.compile(r"[A-Za-z]{2,}[,.:;!?']? [A-Za-z]{2,}")
_MARK = "# not a UI text"
_STYLE_WORDS = {"bold", "dim", "italic", "underline", "reverse", "strike", "not", "on"}


def test_no_english_literal_outside_the_text_files() -> None:
    """A string a person could read (two words or more) that is not a text key, a
    docstring, a style or CSS is a text that escaped the JSON files."""
    en = _texts("en")
    offenders = []
    for path, tree in _sources():
        lines = path.read_text(encoding="utf-8").splitlines()
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
                continue
            value = node.value
            # the mark may stand on any line of the statement the formatter spread out
            marked = any(_MARK in line for line in lines[node.lineno - 1 : (node.end_lineno or node.lineno) + 1])
            if value in en or not _WORDS.search(value) or marked:
                continue
            if (
                set(re.findall(r"[a-z]+", value.lower())) <= _STYLE_WORDS
                or "$" in value
                or ("{" in value and ";" in value)
            ):
                continue
            offenders.append(f"{path.relative_to(TUI)}:{node.lineno}: {value!r}")
    assert not offenders, "\n".join(offenders)
