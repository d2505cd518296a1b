"""Concordance waits for unknown facts: a missing menopausal status does not make a treatment discordant.

With menopausal status unknown in a younger woman, the engine adds ovarian suppression to
endocrine options (with a caution). An AI plus a CDK4/6 inhibitor without it is then right if she
is past menopause and incomplete if she is not: the cohort says unknown, not discordant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mbcnav.cohort import local
from mbcnav.knowledge.loader import knowledge
from tests.cohort.reference import expected

BASE: dict[str, Any] = {"sex": "female", "age": 44, "disease": {"sites": ["bone"]},
                        "tumor": {"er": "positive", "pr": "positive", "her2": {"ihc": "1+"}}}
AI_CDK = ["letrozole", "Kisqali"]


@pytest.mark.parametrize(("menopause", "given", "want"), [
    (None, AI_CDK, "unknown"),                        # waits for the menopausal status
    ("pre", AI_CDK, "discordant"),                    # ovarian suppression missing
    ("post", AI_CDK, "concordant"),
    (None, [*AI_CDK, "goserelin"], "concordant"),     # right whatever the status
    ("pre", [*AI_CDK, "goserelin"], "concordant"),
    (None, ["capecitabine", "letrozole"], "discordant"),  # not an option, known or not
])
def test_concordance_with_and_without_the_menopausal_status(
    tmp_path: Path, menopause: str | None, given: list[str], want: str
) -> None:
    record = {**BASE, "given_drugs": given} | ({"menopausal_status": menopause} if menopause else {})
    source = tmp_path / "one.ndjson"
    source.write_text(json.dumps(record) + "\n", encoding="utf-8")
    local.evaluate(source, tmp_path / "out.parquet")
    got = pl.read_parquet(tmp_path / "out.parquet")["concordance"].cast(pl.String).to_list()
    assert got == [want] == [expected(record, knowledge())["concordance"]]
