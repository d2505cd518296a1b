"""Synthetic cohorts: seeded and reproducible, with the documented shares."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mbcnav.cohort import local, synth


def test_same_seed_same_cohort_whatever_the_chunking() -> None:
    options = synth.Options(seed=42)
    whole = synth.chunk(3_000, 0, options)
    pieces = pl.concat([synth.chunk(1_000, start, options) for start in (0, 1_000, 2_000)])
    assert whole.to_dicts() == pieces.to_dicts()
    assert synth.chunk(500, 0, synth.Options(seed=43)).to_dicts() != whole.head(500).to_dicts()


def test_shares_follow_the_documented_sources(tmp_path: Path) -> None:
    source = tmp_path / "c.parquet"
    synth.write(20_000, source, synth.Options(seed=5))
    out = tmp_path / "r.parquet"
    local.evaluate(source, out)
    results = pl.read_parquet(out)
    share = results["subtype"].cast(pl.String).value_counts(normalize=True)
    shares = dict(zip(share["subtype"], share["proportion"], strict=True))
    assert 0.64 < shares["hr_positive_her2_negative"] < 0.76   # SEER: 69.5 % (+ unknowns folded out)
    assert 0.08 < shares["triple_negative"] < 0.13              # SEER: 10.5 %
    assert 0.03 < shares["unknown"] < 0.07                      # receptors or HER2 not known
    her2 = results.filter(pl.col("subtype").cast(pl.String).is_in(["hr_positive_her2_negative", "triple_negative"]))
    low = (her2["her2_category"].cast(pl.String) == "low").mean()
    assert low is not None and 0.5 < float(low) < 0.7          # HER2-low: ~2/3 of HR+, ~1/3 of TNBC
    frame = pl.read_parquet(source)
    male = (frame["sex"] == "male").mean()
    assert male is not None and 0.005 < float(male) < 0.02


def test_malformed_rate_gives_that_share_of_rejected_rows(tmp_path: Path) -> None:
    source = tmp_path / "bad.ndjson"
    synth.write(2_000, source, synth.Options(seed=9, malformed_rate=0.1))
    summary = local.evaluate(source, tmp_path / "r.parquet")
    assert 140 < summary.rejected < 260 and summary.read == 2_000
    assert summary.errors_path is not None
    fields = set(pl.read_csv(summary.errors_path)["field"])
    assert {"sex", "tumor.er", "age", "tumor.her2", "health.ecog", "disease.sites[1]", "history.metastatic"} <= fields


def test_no_patients_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    """An empty Parquet file would have no schema, and evaluating it would fail further on."""
    out = tmp_path / "none.parquet"
    with pytest.raises(ValueError, match="at least 1 patient"):
        synth.write(0, out, synth.Options())
    assert not out.exists() and list(tmp_path.iterdir()) == []
