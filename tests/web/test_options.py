"""Your options: grouping, explanations, professional view, urgent warnings first, the path, caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from markupsafe import Markup
from starlette.requests import Request

from mbcnav.engine import recommend
from mbcnav.web.content import category_of
from mbcnav.web.form import answers_from_profile
from mbcnav.web.optionspage import CSRF_SLOT, PANEL_SLOT, OptionsPage
from mbcnav.web.templating import Renderer
from mbcnav.web.view import build

from .conftest import Browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def profile(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def test_options_are_grouped_under_the_seed_headings(browser: Browser) -> None:
    browser.example("hr_positive_second_line_esr1_pik3ca")
    html = browser.client.get("/options").text
    rec = recommend(profile("hr_positive_second_line_esr1_pik3ca"))
    for entry in rec["options"] + rec["local_and_supportive"]:
        heading = category_of(entry["category"])
        assert f'id="{heading.slug}"' in html and f'id="opt-{entry["id"]}"' in html
        assert html.index(f'id="{heading.slug}"') < html.index(f'id="opt-{entry["id"]}"')
    for text in ("Why it fits you", "How it is given", "Common side effects", "What is checked",
                 "Strength of evidence", "Tests to ask about", "What does not apply to you, and why",
                 "What to ask your doctor", "Your treatment path"):
        assert text in html, text


def test_immunotherapy_has_its_own_heading_and_bone_drugs_sit_with_palliative_care() -> None:
    assert category_of("immunotherapy").title == "Immunotherapy"
    assert category_of("supportive_care").slug == category_of("palliative_care").slug


def test_professional_view_shows_levels_trials_and_citations(browser: Browser) -> None:
    browser.example("her2_positive_first_line")
    patient = browser.client.get("/options").text
    pro = browser.client.get("/options?view=pro").text
    assert "CLEOPATRA" not in patient and "CLEOPATRA" in pro
    assert "Phase 3 randomised trial" in pro and "Dose and schedule" in pro
    assert 'rel="noopener noreferrer"' in pro
    assert 'href="/options?view=pro" aria-current="page"' in pro


def test_urgent_warnings_come_first(browser: Browser) -> None:
    browser.post("/about-your-cancer", {"sex": "female", "tumor.er": "positive",
                                        "disease.spinal_cord_compression": "yes", "disease.sites": ["bone"]})
    html = browser.client.get("/options").text
    assert "Important: act on this first" in html
    urgent = html.index("Important: act on this first")
    assert urgent < html.index("On this page") < html.index('id="opt-')
    assert "spinal cord" in html[urgent:html.index("On this page")]


def test_interactions_with_own_medicines_are_shown(browser: Browser) -> None:
    browser.post("/about-your-cancer", {"sex": "female", "menopausal_status": "pre", "tumor.er": "positive",
                                        "tumor.her2.ihc": "0", "history.metastatic.0.drugs": ["tamoxifen"],
                                        "history.metastatic.0.outcome": "ongoing", "current_medications": "Paxil"})
    html = browser.client.get("/options").text
    assert "Your medicines and these treatments" in html and "Paroxetine" in html


def test_path_shows_history_now_and_later(browser: Browser) -> None:
    browser.example("hr_positive_second_line_esr1_pik3ca")
    html = browser.client.get("/options").text
    path = html[html.index('id="path"'):html.index("</ol>", html.index('id="path"'))]
    assert "path-past" in path and "path-now" in path and "path-later" in path
    assert "Letrozole + Ribociclib" in path


@pytest.mark.parametrize("name", ["hr_positive_second_line_esr1_pik3ca", "triple_negative_pdl1_high",
                                  "spinal_cord_compression_emergency", "unknown_receptors", "pregnant_her2_positive"])
@pytest.mark.parametrize("pro", [False, True])
def test_cached_body_is_identical_to_a_fresh_render(name: str, pro: bool) -> None:
    data = profile(name)
    view = build(data)
    page = OptionsPage(Renderer())
    general = [q.id for _, qs in view.general_questions for q in qs]
    questions = [q.id for q in view.personal_questions][:2] + general[-1:]
    options = sorted(view.option_ids)[:1]
    key = json.dumps(data, sort_keys=True, separators=(",", ":"))
    cached = page.body(key, view, pro, csrf="TOKEN", guide_panel=Markup("<aside>panel</aside>"),
                       in_guide=[*questions, "not_on_page"], chosen=options)
    fresh = page.render(view, pro, "TOKEN", Markup("<aside>panel</aside>"), questions, options)
    cached = cached.decode()
    assert cached == fresh
    assert CSRF_SLOT not in cached and PANEL_SLOT not in cached
    assert cached.count("Remove from guide") == len(questions)
    assert cached.count("Remove option from guide") == len(options)
    # The cache does not remember the previous visitor: a second visitor gets their own page.
    again = page.body(key, view, pro, csrf="OTHER", guide_panel=Markup("<aside>2</aside>"), in_guide=(), chosen=())
    assert again.decode() == page.render(view, pro, "OTHER", Markup("<aside>2</aside>"), (), ())
    assert len(page.cache) == 1


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("session", [
    {}, {"csrf": "T1", "answers": {}}, {"csrf": "T2", "answers": {}, "guide": [["a", "note", "own", "x"]] * 3}])
def test_framed_page_is_identical_to_a_fresh_render(session: dict[str, object], htmx: bool) -> None:
    renderer = Renderer()
    headers = [(b"hx-request", b"true")] if htmx else []
    for _ in range(2):   # the second call comes from the layout cache
        request = Request({"type": "http", "method": "GET", "path": "/options", "query_string": b"",
                           "headers": headers, "session": dict(session)})
        framed = renderer.framed(request, "options.html", "<p>BODY &amp; more</p>").body
        fresh = renderer.page(request, "options.html", body=Markup("<p>BODY &amp; more</p>")).body
        assert framed == fresh
        assert b"@@mbcnav" not in framed and request.session["csrf"].encode() in framed


def test_every_example_renders(browser: Browser) -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        response = browser.post("/about-your-cancer", answers_from_profile(json.loads(path.read_text())))
        assert response.status_code == 303, path.stem
        for view in ("", "?view=pro"):
            assert browser.client.get("/options" + view).status_code == 200, path.stem


@pytest.mark.parametrize(("name", "term"), [
    ("hr_positive_second_line_esr1_pik3ca", "&term=hormone%20receptor%20positive%20HER2%20negative&"),
    ("triple_negative_pdl1_high", "&term=triple%20negative&"),
    ("unknown_receptors", None),
])
def test_the_trials_section_links_to_recruiting_trials_for_the_subtype(browser: Browser, name: str,
                                                                       term: str | None) -> None:
    assert browser.post("/about-your-cancer", answers_from_profile(profile(name))).status_code == 303
    html = browser.client.get("/options").text
    section = html[html.index('id="clinical-trials"'):]
    section = section[:section.index("</section>")]
    link = section.split('href="https://clinicaltrials.gov/search?', 1)[1].split('"', 1)[0]
    assert link.startswith("cond=Metastatic%20Breast%20Cancer")
    assert link.endswith("aggFilters=status:rec")
    if term is None:
        assert "term=" not in link       # subtype unknown: every recruiting MBC trial, not a guess
    else:
        assert term in f"&{link}&".replace("&amp;", "&")
    assert 'href="tel:1-800-422-6237"' in section and "National Cancer Institute" in section


def test_the_clinical_trials_page_links_to_the_registry(browser: Browser) -> None:
    html = browser.client.get("/treatments/clinical-trials").text
    link = "https://clinicaltrials.gov/search?cond=Metastatic%20Breast%20Cancer&amp;aggFilters=status:rec"
    assert f'href="{link}"' in html


def test_tests_show_what_each_result_could_add_apart_from_the_options(browser: Browser) -> None:
    from tests.test_whatif import HER2_EQUIVOCAL

    assert browser.post("/about-your-cancer", answers_from_profile(HER2_EQUIVOCAL)).status_code == 303
    html = browser.client.get("/options").text
    tests = html[html.index('id="tests"'):]
    tests = tests[:tests.index("</section>")]
    assert "If ISH finds extra copies of HER2 (HER2-positive), these could be added:" in tests
    assert "A CDK4/6 pill with a hormone pill that lowers estrogen" in tests
    assert "Until then these are not options for you." in tests
    before_tests = html[:html.index('id="tests"')]
    assert "A CDK4/6 pill with a hormone pill that lowers estrogen" not in before_tests   # not shown as an option
    pro = browser.client.get("/options?view=pro").text
    assert "CDK4/6 inhibitor" in pro[pro.index('id="tests"'):]                           # professional titles


def test_text_that_looks_like_a_slot_marker_is_shown_as_typed(browser: Browser) -> None:
    """A medicine name is shown back in a warning; one shaped like a slot marker must stay text."""
    data = profile("hr_positive_second_line_esr1_pik3ca")
    lookalikes = ["@@mbcnav:csrf@@", "@@mbcnav:q:general_goal@@", "@@mbcnav:panel@@"]
    data["current_medications"] = lookalikes
    assert browser.post("/about-your-cancer", answers_from_profile(data)).status_code == 303
    for view in ("", "?view=pro"):
        response = browser.client.get("/options" + view)
        assert response.status_code == 200
        assert all(marker in response.text for marker in lookalikes)
