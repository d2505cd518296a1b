"""The command line, run as a user would (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mbcnav", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)


def test_recommend_prints_contract_json() -> None:
    result = run("recommend", str(EXAMPLES / "hr_positive_postmenopausal_first_line.json"))
    assert result.returncode == 0, result.stderr
    rec = json.loads(result.stdout)
    assert rec["contract"] == "1" and rec["subtype"] == "hr_positive_her2_negative"
    assert rec["options"][0]["tier"] == "preferred"


def test_recommend_text_format_is_readable() -> None:
    result = run("recommend", "--format", "text", str(EXAMPLES / "hr_positive_premenopausal_de_novo.json"))
    assert result.returncode == 0, result.stderr
    assert "OPTIONS THAT FIT" in result.stdout and "not medical advice" in result.stdout
    assert "ovarian suppression" in result.stdout


def test_without_a_profile_the_bundled_example_is_used() -> None:
    result = run("recommend")
    assert result.returncode == 0
    assert "bundled example" in result.stderr
    assert json.loads(result.stdout)["options"]


def test_invalid_profile_exits_2_with_the_field_named() -> None:
    result = run("recommend", "-", stdin=json.dumps({"sex": "female", "tumor": {"er": "maybe"}}))
    assert result.returncode == 2
    assert "tumor.er: 'maybe' is not allowed" in result.stderr
    assert result.stdout == ""


def test_a_key_given_twice_exits_2_with_the_field_named() -> None:
    text = '{"sex": "female", "history": {"metastatic": [{"drugs": ["letrozole"], "outcome": "progressed", ' \
           '"outcome": "ongoing"}]}}'
    result = run("recommend", "-", stdin=text)
    assert result.returncode == 2 and result.stdout == ""
    assert "history.metastatic[0].outcome: given more than once" in result.stderr


def test_malformed_json_and_missing_file_exit_2() -> None:
    assert run("recommend", "-", stdin="{not json").returncode == 2
    missing = run("recommend", "/nonexistent/profile.json")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_explain_shows_facts_and_rule_verdicts() -> None:
    result = run("explain", str(EXAMPLES / "hr_positive_postmenopausal_first_line.json"))
    assert result.returncode == 0, result.stderr
    assert "subtype = 'hr_positive_her2_negative'" in result.stdout
    assert "[offered] cdk46_inhibitor_plus_ai" in result.stdout


def test_sources_lists_every_source_with_review_date() -> None:
    result = run("sources", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    ids = {s["id"] for s in data["sources"]}
    assert "consensus_abc5" in ids
    assert all(s["reviewed"] for s in data["sources"])


def test_every_bundled_example_runs() -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        result = run("recommend", str(path))
        assert result.returncode == 0, (path.name, result.stderr)


def test_kb_new_rule_writes_a_skeleton_that_fails_lint_until_filled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from click.testing import CliRunner

    from mbcnav.cli import main
    from mbcnav.knowledge import loader

    data = tmp_path / "data"
    shutil.copytree(str(loader.data_root()), data)
    monkeypatch.setattr(loader, "data_root", lambda: data)
    result = CliRunner().invoke(main, ["kb", "new-rule", "--group", "hr_positive_her2_negative", "my_new_rule"])
    assert result.exit_code == 0, result.output
    path = data / "rules" / "options" / "hr_positive_her2_negative" / "my_new_rule.yaml"
    assert "id: my_new_rule" in path.read_text()
    with pytest.raises(loader.KnowledgeError, match="TODO_"):
        loader.load(data)
    again = CliRunner().invoke(main, ["kb", "new-rule", "--group", "hr_positive_her2_negative", "my_new_rule"])
    assert again.exit_code == 2


SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_recommend_from_a_fhir_bundle_reports_the_import_on_stderr() -> None:
    bundle = SHARED / "fixtures" / "fhir" / "mcode-ctm-app" / "TrialMatching_Patient01.json"
    result = run("recommend", "--fhir", str(bundle))
    assert result.returncode == 0, result.stderr
    assert "found      Observation tumor.er = 'positive'" in result.stderr
    rec = json.loads(result.stdout)
    assert rec["subtype"] == "hr_positive_her2_negative"


def test_report_writes_a_one_page_pdf(tmp_path: Path) -> None:
    from pypdf import PdfReader

    out = tmp_path / "summary.pdf"
    result = run("report", str(EXAMPLES / "her2_positive_first_line.json"), "--pdf", str(out))
    assert result.returncode == 0, result.stderr
    reader = PdfReader(out)
    assert len(reader.pages) == 1
    assert "not medical advice" in reader.pages[0].extract_text().replace("\n", " ")
