"""Property: over arbitrary damage to a profile, the cohort engine accepts exactly the lines the
one-patient parser accepts, once a value is read the way columnar files are (`as_columns_read`,
docs/cohort.md "Types"), and never stops the run.

Each example is a file of NDJSON lines, each a valid profile changed in up to three places (a field
removed, set to a value of another kind or out of range, an unknown field added), sometimes with a
key given twice or the line cut short. Damage of this kind found two crashes (a repeated key
inside an object; a list of lists of drug names) and lists whose null items were let through.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbcnav.cohort import local
from mbcnav.cohort.schema import Field, profile_tree
from mbcnav.cohort.validate import FALSE_TEXT, TRUE_TEXT
from mbcnav.profile import ProfileError, parse_profile, profile_json

BASE: dict[str, Any] = {
    "sex": "female", "age": 64, "menopausal_status": "post", "ovarian_function_suppressed": False,
    "tumor": {"er": "positive", "pr": "negative", "her2": {"ihc": "2+", "ish": "not_amplified"}, "esr1": "mutated",
              "pdl1_cps": 12},
    "disease": {"presentation": "recurrent", "sites": ["bone", "liver"], "visceral_crisis": False,
                "brain_metastases": {"active": True, "symptomatic": False, "count": 2}},
    "health": {"ecog": 1, "lvef_percent": 55, "conditions": ["diabetes"]},
    "history": {"early": [{"drugs": ["anastrozole"], "setting": "adjuvant", "months_since_end": 30}],
                "metastatic": [{"drugs": ["letrozole", "palbociclib"], "outcome": "progressed", "months": 14}]},
    "current_medications": ["warfarin"],
}
VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2.5, 1e9, 150, "", "x", "positive", "Positive", " post ", "1+", "0", "true",
    "letrozole", "Kisqali", "ongoing", [], ["bone"], ["x"], [None], [1], [None, "liver"], [["bone"]], {},
    {"er": "positive"}, {"drugs": ["letrozole"]}, [{"drugs": []}], [None, {"drugs": ["letrozole"]}],
]


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


PATHS = _paths(BASE)
_CHANGE = st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "remove", "add"]), st.sampled_from(VALUES))


def _parent(profile: Any, path: tuple[str | int, ...]) -> Any:
    node = profile
    for step in path[:-1]:
        present = step in node if isinstance(node, dict) else (
            isinstance(node, list) and isinstance(step, int) and step < len(node))
        if not present:
            return None
        node = node[step]
    return node


@st.composite
def damaged(draw: st.DrawFn) -> str:
    profile = copy.deepcopy(BASE)
    for path, how, value in draw(st.lists(_CHANGE, max_size=3)):
        parent = _parent(profile, path)   # an earlier change may have removed the place
        last = path[-1]
        if isinstance(parent, dict) and how == "remove":
            parent.pop(last, None)
        elif isinstance(parent, dict) and how == "add":
            parent["colour"] = copy.deepcopy(value)
        elif isinstance(parent, dict) or (isinstance(parent, list) and isinstance(last, int) and last < len(parent)):
            parent[last] = copy.deepcopy(value)
    text = json.dumps(profile)
    if draw(st.booleans()) and draw(st.booleans()):
        text = text[:-1] + ', "sex": "female"}'
    if draw(st.integers(0, 19)) == 0:
        text = text[: draw(st.integers(1, len(text) - 1))]
    return text


def as_columns_read(value: Any, spec: Field) -> Any:
    """A JSON value as the cohort reads it: columnar exports choose their own types, so a number
    may come as text ("64") and a yes/no as 1/0 or "true"; text fields take whatever is there as
    text. Values, ranges and shapes are checked as strictly as the one-patient parser does."""
    if value is None or isinstance(value, dict | list):
        if spec.kind == "struct" and isinstance(value, dict):
            members = {f.name: f for f in spec.fields}
            return {k: as_columns_read(v, members[k]) if k in members else v for k, v in value.items()}
        if spec.kind == "list" and isinstance(value, list) and spec.item is not None:
            return [as_columns_read(v, spec.item) for v in value]
        return value
    if spec.kind in ("int", "float"):
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return value
        if isinstance(number, float) and spec.kind == "int" and number.is_integer():
            return int(number)
        return number
    if spec.kind == "bool" and not isinstance(value, bool):
        spelled = str(value).strip().lower() if isinstance(value, str) else {1: "1", 0: "0"}.get(value, "?")
        return True if spelled in TRUE_TEXT else False if spelled in FALSE_TEXT else value
    if spec.kind == "text" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def one_patient_accepts(line: str) -> bool:
    try:
        data = profile_json(line)
    except (ProfileError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    data = as_columns_read(data, profile_tree())

    def without_nulls(value: Any) -> Any:   # columnar input cannot tell a null field from a missing one
        if isinstance(value, dict):
            return {k: without_nulls(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_nulls(v) for v in value]
        return value

    try:
        parse_profile(without_nulls(data))
    except ProfileError:
        return False
    return True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(damaged(), min_size=1, max_size=40))
def test_cohort_accepts_exactly_what_the_one_patient_parser_accepts(tmp_path: Path, lines: list[str]) -> None:
    source, out = tmp_path / "in.ndjson", tmp_path / "out.parquet"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = local.evaluate(source, out)
    evaluated = set(pl.read_parquet(out)["row"].to_list())
    wanted = {row for row, line in enumerate(lines, 1) if one_patient_accepts(line)}
    assert evaluated == wanted
    assert (summary.read, summary.rejected) == (len(lines), len(lines) - len(wanted))
