from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mbcnav
from mbcnav.guide.model import MAX_ITEMS, Guide, GuideError, GuideItem, parse_guide
from mbcnav.guide.suggest import option_summaries, suggested_questions

EXAMPLES = Path(mbcnav.__file__).parent / "examples"


def texts(g: Guide) -> list[str]:
    return [i.text for i in g.items]


def test_add_remove_and_reorder() -> None:
    g = Guide()
    a = g.add_question("A?")
    b = g.add_note("B")
    c = g.add_question("C?", "general_goal")
    assert texts(g) == ["A?", "B", "C?"]
    assert (a.origin, b.origin, c.origin) == ("own", "own", "general_goal")
    assert g.find_origin("general_goal") is c
    assert g.move_up(c.id) and texts(g) == ["A?", "C?", "B"]
    assert not g.move_up(a.id)
    assert g.move_down(a.id) and texts(g) == ["C?", "A?", "B"]
    assert not g.move_down(b.id)
    g.move(b.id, 0)
    assert texts(g) == ["B", "C?", "A?"]
    g.move(b.id, 99)  # clamped to the end
    assert texts(g) == ["C?", "A?", "B"]
    assert g.remove(c.id) and not g.remove(c.id)
    assert texts(g) == ["A?", "B"] and g.find_origin("general_goal") is None
    g.edit(a.id, "  A, reworded?  ")
    assert g.items[0].text == "A, reworded?"
    assert [q.text for q in g.questions] == ["A, reworded?"]


def test_same_suggested_question_cannot_be_added_twice() -> None:
    g = Guide()
    g.add_question("Q?", "general_goal")
    with pytest.raises(GuideError, match="origin"):
        g.add_question("Q again?", "general_goal")
    g.add_question("Own one", "own")
    g.add_question("Own two", "own")  # the user's own questions may repeat the origin "own"


def test_text_is_cleaned_and_checked() -> None:
    g = Guide()
    assert g.add_note("  line one\r\nline\ttwo \r").text == "line one\nline two"
    for bad, where in [("   ", "text"), ("x" * 1001, "1000"), ("bell\x07", "U+0007"), ("rtl\u202etxt", "U+202E"),
                       ("nul\x00", "U+0000")]:
        with pytest.raises(GuideError) as err:
            g.add_question(bad)
        assert where in str(err.value) and str(err.value).startswith("text:")
    assert len(g.add_question("x" * 1000).text) == 1000


def test_item_limit_names_the_field() -> None:
    g = Guide()
    for i in range(MAX_ITEMS):
        g.add_question(f"Q{i}?")
    with pytest.raises(GuideError, match=r"^items: a guide holds at most 100"):
        g.add_note("one too many")


def test_parse_guide_names_each_bad_field() -> None:
    with pytest.raises(GuideError) as err:
        parse_guide({"items": [{"id": "a1", "kind": "question", "text": ""},
                               {"id": "a2", "kind": "memo", "text": "x"}],
                     "knowledge_version": "bad version!", "extra": 1})
    problems = err.value.problems
    assert any(p.startswith("items.0.text: must be 1 to 1000") for p in problems), problems
    assert any(p.startswith("items.1.kind:") for p in problems), problems
    assert any(p.startswith("knowledge_version:") for p in problems), problems
    assert any(p.startswith("extra:") for p in problems), problems
    with pytest.raises(GuideError, match="unique"):
        parse_guide({"items": [{"id": "same", "kind": "note", "text": "a"},
                               {"id": "same", "kind": "note", "text": "b"}]})
    with pytest.raises(GuideError, match=r"^items: at most|items: List should have at most"):
        parse_guide({"items": [{"kind": "note", "text": str(i)} for i in range(101)]})


def test_json_round_trip_and_naive_dates_become_utc() -> None:
    g = Guide(knowledge_version="2026.11.0+abc", created=datetime(2026, 11, 23, 9, 30))
    g.add_question("Q?")
    assert g.created.tzinfo is UTC
    again = parse_guide(g.model_dump_json())
    assert again == g
    assert parse_guide(json.loads(g.model_dump_json())) == g


def test_item_ids_are_short_and_random() -> None:
    ids = {GuideItem(kind="note", text="x").id for _ in range(200)}
    assert len(ids) == 200 and all(len(i) == 8 for i in ids)


def test_suggestions_and_option_summaries_come_from_a_recommendation() -> None:
    rec: dict[str, Any] = mbcnav.recommend(json.loads((EXAMPLES / "her2_positive_first_line.json").read_text()))
    suggested = suggested_questions(rec)
    assert [s.text for s in suggested] == rec["questions_for_doctor"]
    assert any(s.personal for s in suggested) and any(not s.personal for s in suggested)
    assert "general_goal" in {s.id for s in suggested}
    summaries = option_summaries(rec)
    assert [s.title for s in summaries] == [o["plain_title"] for o in rec["options"]]
    assert "trastuzumab" in summaries[0].drugs
    chosen = option_summaries(rec, [rec["options"][-1]["id"]])
    assert [s.title for s in chosen] == [rec["options"][-1]["plain_title"]]
    g = Guide(options_summary=chosen, knowledge_version=rec["knowledge_version"])
    for s in suggested:
        g.add_question(s.text, s.id)
    assert parse_guide(g.model_dump_json()) == g


operations = st.lists(st.tuples(st.sampled_from(["add", "note", "remove", "up", "down", "move"]),
                                st.integers(0, 30)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_editing_keeps_a_valid_guide(ops: list[tuple[str, int]]) -> None:
    g = Guide()
    for op, n in ops:
        target = g.items[n % len(g.items)].id if g.items else None
        before = sorted(texts(g))
        if op == "add":
            g.add_question(f"Q{n}?")
        elif op == "note":
            g.add_note(f"N{n}")
        elif target and op == "remove":
            g.remove(target)
        elif target and op in ("up", "down", "move"):
            if op == "up":
                g.move_up(target)
            elif op == "down":
                g.move_down(target)
            else:
                g.move(target, n)
            assert sorted(texts(g)) == before  # reordering never loses or duplicates an item
    assert len({i.id for i in g.items}) == len(g.items) <= MAX_ITEMS
    assert parse_guide(g.model_dump_json()) == g
