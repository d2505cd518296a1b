"""The "About your cancer" form: round trip, "I don't know" everywhere, messages next to fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mbcnav.profile import parse_profile
from mbcnav.readability import GRADE_LIMIT, grade
from mbcnav.web.content import categories, form_fields, form_steps, trial_finder
from mbcnav.web.form import answers_from_profile, drug_choices, error_target, parse_answers

from .conftest import Browser

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_round_trips_through_the_form(path: Path) -> None:
    profile = json.loads(path.read_text())
    parsed = parse_answers(answers_from_profile(profile))
    assert parsed.errors == {}
    assert parsed.profile is not None
    # Same profile as the engine sees it (the form cannot express more than 2 early / 5 later lines).
    assert parse_profile(parsed.profile) == parse_profile(profile)


def test_every_question_but_sex_allows_i_dont_know() -> None:
    for spec in form_fields().values():
        if spec.kind in ("radio", "yesno"):
            assert spec.required == (spec.name == "sex"), spec.name
    assert parse_answers({"sex": "female"}).profile == {"sex": "female"}
    everything_unknown = {name: "unknown" for name, spec in form_fields().items() if spec.kind in ("radio", "yesno")}
    parsed = parse_answers({**everything_unknown, "sex": "male", "tumor.her2.ish": "not_done"})
    assert parsed.profile == {"sex": "male"}


def test_every_receptor_and_biomarker_question_says_where_to_find_it() -> None:
    for step in form_steps():
        if step.id in ("receptors", "biomarkers", "spread"):
            assert step.where, step.id
    for name in ("tumor.er", "tumor.pr", "tumor.her2.ihc", "tumor.her2.ish", "tumor.pdl1_cps"):
        assert form_fields()[name].where, name


def test_patient_text_reads_at_grade_8_or_lower() -> None:
    texts = [t for step in form_steps() for t in (step.intro, step.where) if t]
    texts += [t for spec in form_fields().values() for t in (spec.hint, spec.where, spec.urgent) if t]
    texts += [t for c in categories() for t in (c.summary, c.what, c.how, c.feel)]
    finder = trial_finder()
    texts += [finder.registry.text, finder.helpline.text, finder.bring]
    too_hard = [(round(grade(t), 1), t) for t in texts if grade(t) > GRADE_LIMIT]
    assert not too_hard


def test_her2_low_and_ultralow_can_be_entered() -> None:
    choices = {value for value, _ in form_fields()["tumor.her2.ihc"].choices}
    assert {"0", "ultralow", "1+", "2+", "3+"} <= choices


def test_brand_names_from_the_list_are_understood() -> None:
    assert "Ribociclib (Kisqali)" in drug_choices()
    parsed = parse_answers({"sex": "female", "history.metastatic.0.drugs": ["Ribociclib (Kisqali)", "Femara"],
                            "history.metastatic.0.outcome": "progressed"})
    assert parsed.profile is not None
    assert parse_profile(parsed.profile).history.metastatic[0].drugs == ["ribociclib", "letrozole"]


def submit(browser: Browser, answers: dict[str, str | list[str]]) -> str:
    response = browser.post("/about-your-cancer", answers)
    assert response.status_code == 422
    return response.text


def field_errors(html: str, field_id: str) -> list[str]:
    return re.findall(rf'<p class="error-message" id="{re.escape(field_id)}-error\d+">(.*?)</p>', html)


def test_unknown_drug_message_is_next_to_its_row_and_in_the_summary(browser: Browser) -> None:
    html = submit(browser, {"sex": "female", "history.metastatic.0.drugs": ["Kisqaly"]})
    messages = field_errors(html, "f-history-metastatic-0-drugs")
    assert messages and "Kisqaly" in messages[0] and "Kisqali" in messages[0]
    assert 'href="#f-history-metastatic-0-drugs-0"' in html             # summary links to the input
    assert 'id="f-history-metastatic-0-drugs-0"' in html
    assert 'value="Kisqaly"' in html                                    # what was typed is kept
    assert "<title>Error: About your cancer" in html


def test_missing_sex_is_reported_on_its_field(browser: Browser) -> None:
    html = submit(browser, {"tumor.er": "positive"})
    assert field_errors(html, "f-sex")
    assert f'href="#{error_target("sex")}"' in html and 'id="f-sex-0"' in html
    assert 'value="positive" checked' in html


@pytest.mark.parametrize(("answers", "field", "words"), [
    ({"sex": "male", "menopausal_status": "post"}, "f-menopausal-status", "for women"),
    ({"sex": "female", "tumor.her2.ihc": "3+", "tumor.her2.ish": "not_amplified"}, "f-tumor-her2-ihc", "not a valid"),
    ({"sex": "female", "age": "abc"}, "f-age", "Enter a number"),
    ({"sex": "female", "age": "12"}, "f-age", "at least 18"),
    ({"sex": "female", "health.conditions": ["pregnancy"], "tumor.pdl1_cps": "500"}, "f-tumor-pdl1-cps", "100"),
    ({"sex": "female", "history.metastatic.0.months": "4"}, "f-history-metastatic-0-drugs", "medicine names"),
    ({"sex": "female", "history.metastatic.0.drugs": ["letrozole"], "history.metastatic.0.outcome": "ongoing",
      "history.metastatic.1.drugs": ["fulvestrant"]}, "f-history-metastatic", "newest"),
])
def test_problems_land_next_to_the_right_field(browser: Browser, answers: dict[str, str | list[str]], field: str,
                                               words: str) -> None:
    html = submit(browser, answers)
    messages = field_errors(html, field)
    assert messages and any(words in m for m in messages), (field, re.findall(r'error-message" id="([^"]+)"', html))


def test_valid_answers_are_kept_in_the_session_and_lead_to_options(browser: Browser) -> None:
    response = browser.post("/about-your-cancer", {"sex": "female", "menopausal_status": "post",
                                                   "tumor.er": "positive", "tumor.her2.ihc": "1+"})
    assert response.status_code == 303 and response.headers["location"] == "/options"
    assert "Why it fits you" in browser.client.get("/options").text
    form = browser.client.get("/about-your-cancer").text
    assert 'value="1+" checked' in form


def test_htmx_submission_with_errors_is_swappable(browser: Browser) -> None:
    response = browser.post("/about-your-cancer", {"age": "x"}, htmx=True)
    assert response.status_code == 200 and "error-summary" in response.text


def test_example_loads_into_the_session(browser: Browser) -> None:
    browser.example("male_hr_positive")
    text = browser.client.get("/about-your-cancer").text
    assert 'name="sex" value="male" checked' in text
