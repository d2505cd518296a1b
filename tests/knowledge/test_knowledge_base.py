"""The knowledge base as a whole: coverage, references, reading grade, versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mbcnav.knowledge import lint
from mbcnav.knowledge.loader import KnowledgeError, data_root, knowledge, load
from mbcnav.readability import GRADE_LIMIT, grade


def test_catalogue_covers_every_contract_drug(contract_names: dict[str, dict[str, list[str]]]) -> None:
    kb = knowledge()
    for group, drugs in contract_names.items():
        if group == "non_drug":
            continue
        for generic, brands in drugs.items():
            assert generic in kb.drugs, generic
            assert set(brands) <= set(kb.drugs[generic].brands), generic


def test_every_drug_named_in_a_rule_is_in_the_catalogue() -> None:
    kb = knowledge()
    named = {d for rule in kb.rules for component in rule.drugs for d in component}
    assert named <= kb.drug_ids()


def test_patient_text_reads_at_grade_8_or_lower() -> None:
    too_hard = lint.readability_problems(knowledge())
    assert too_hard == [], "\n".join(too_hard)


def test_readability_measure_can_fail() -> None:
    hard = ("Pharmacokinetic considerations necessitate individualised therapeutic monitoring "
            "notwithstanding concomitant administration of cytochrome-modulating pharmaceuticals.")
    assert grade(hard) > GRADE_LIMIT


def test_reviews_are_fresh() -> None:
    assert lint.stale_reviews(knowledge()) == []


def test_every_rule_cites_known_sources_and_every_option_explains_itself() -> None:
    kb = knowledge()
    for rule in kb.rules:
        assert rule.sources and rule.evidence, rule.id
        assert all(e.source in kb.sources for e in rule.evidence), rule.id
        if rule.kind != "not_recommended":
            assert any(c.because for c in rule.requires), f"{rule.id} has no plain-language why"


def test_knowledge_version_changes_when_data_changes(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(str(data_root()), copy)
    before = load(copy).version
    tests = copy / "tests.yaml"
    tests.write_text(tests.read_text().replace("Scans that show", "Scans showing", 1))
    after = load(copy).version
    assert before != after
    assert before.split("+")[0] == after.split("+")[0] == (copy / "VERSION").read_text().strip()


def test_a_condition_with_an_undeclared_column_fails_to_load(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(str(data_root()), copy)
    rule = next(copy.glob("rules/options/*/cdk46_inhibitor_plus_ai.yaml"))
    rule.write_text(rule.read_text().replace("NOT met_cdk46_inhibitor", "NOT met_cdk46"))
    with pytest.raises(KnowledgeError, match=r"cdk46_inhibitor_plus_ai\.no_prior_cdk46_for_metastatic.*unknown fact"):
        load(copy)


def test_a_rule_file_must_be_named_by_its_id(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(str(data_root()), copy)
    rule = next(copy.glob("rules/options/*/cdk46_inhibitor_plus_ai.yaml"))
    rule.rename(rule.with_name("renamed.yaml"))
    with pytest.raises(KnowledgeError, match="file name must be the rule id"):
        load(copy)


def test_a_drug_missing_from_the_catalogue_fails_to_load(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(str(data_root()), copy)
    rule = next(copy.glob("rules/options/*/cdk46_inhibitor_plus_ai.yaml"))
    rule.write_text(rule.read_text().replace("[ribociclib, palbociclib", "[ribocyclib, palbociclib"))
    with pytest.raises(KnowledgeError, match="'ribocyclib' is not in the catalogue"):
        load(copy)


def test_compiled_cache_round_trips_and_is_keyed_by_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mbcnav.engine import evaluate, recommend
    from mbcnav.knowledge.loader import load_cached

    monkeypatch.setenv("MBCNAV_CACHE_DIR", str(tmp_path / "cache"))
    first = load_cached()
    files = list((tmp_path / "cache").glob("knowledge-*.pickle"))
    assert len(files) == 1 and first.version in files[0].name
    second = load_cached()  # from the pickle: the evaluator is rebuilt from the conditions' Python text
    profile = {"sex": "female", "age": 64, "menopausal_status": "post", "tumor": {"er": "positive"}}
    assert second is not first

    assert evaluate(profile, second).recommendation == evaluate(profile, first).recommendation
    assert recommend(profile)["knowledge_version"] == first.version
