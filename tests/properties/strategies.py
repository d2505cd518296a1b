"""Hypothesis strategies for valid contract profiles (shared by property tests and benchmarks)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mbcnav.profile import CONDITIONS, SITES

SYSTEMIC = [
    "tamoxifen", "anastrozole", "letrozole", "exemestane", "fulvestrant", "elacestrant", "palbociclib",
    "ribociclib", "abemaciclib", "everolimus", "alpelisib", "capivasertib", "olaparib", "trastuzumab",
    "pertuzumab", "ado_trastuzumab_emtansine", "trastuzumab_deruxtecan", "tucatinib", "lapatinib",
    "sacituzumab_govitecan", "datopotamab_deruxtecan", "pembrolizumab", "paclitaxel", "nab_paclitaxel",
    "docetaxel", "doxorubicin", "capecitabine", "eribulin", "vinorelbine", "gemcitabine", "carboplatin",
    "cyclophosphamide", "goserelin", "Kisqali", "Enhertu", "Phesgo",
]


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


her2 = st.builds(
    lambda ihc, ish: {"ihc": ihc, "ish": "not_done" if ihc == "3+" and ish == "not_amplified" else ish},
    st.sampled_from(["0", "ultralow", "1+", "2+", "3+", "unknown"]),
    st.sampled_from(["amplified", "not_amplified", "not_done"]),
)

tumor = st.builds(
    lambda *v: _drop_none(dict(zip(
        ["er", "pr", "her2", "pik3ca", "akt1", "pten", "esr1", "germline_brca", "germline_palb2", "pdl1_cps",
         "msi", "tmb", "ntrk_fusion"], v, strict=True))),
    st.sampled_from(["positive", "low", "negative", "unknown"]),
    st.sampled_from(["positive", "negative", "unknown"]),
    her2,
    st.sampled_from(["mutated", "wild_type", "unknown"]),
    st.sampled_from(["mutated", "wild_type", "unknown"]),
    st.sampled_from(["altered", "wild_type", "unknown"]),
    st.sampled_from(["mutated", "wild_type", "unknown"]),
    st.sampled_from(["brca1", "brca2", "negative", "unknown"]),
    st.sampled_from(["mutated", "negative", "unknown"]),
    _maybe(st.sampled_from([0, 1, 5, 9, 9.9, 10, 15, 40])),
    st.sampled_from(["high", "stable", "unknown"]),
    _maybe(st.sampled_from([0.5, 5, 9.9, 10, 25])),
    st.sampled_from(["present", "absent", "unknown"]),
)

disease = st.builds(
    lambda *v: _drop_none(dict(zip(
        ["presentation", "sites", "visceral_crisis", "symptomatic", "brain_metastases", "spinal_cord_compression",
         "oligometastatic"], v, strict=True))),
    _maybe(st.sampled_from(["de_novo", "recurrent"])),
    _maybe(st.lists(st.sampled_from(SITES), max_size=4)),
    _maybe(st.booleans()),
    _maybe(st.booleans()),
    _maybe(st.builds(lambda a, s, c: _drop_none({"active": a, "symptomatic": s, "count": c}),
                     _maybe(st.booleans()), _maybe(st.booleans()), _maybe(st.integers(0, 12)))),
    _maybe(st.booleans()),
    _maybe(st.booleans()),
)

early = st.lists(
    st.builds(
        lambda drugs, setting, months: _drop_none({"drugs": drugs, "setting": setting, "months_since_end": months}),
        st.lists(st.sampled_from(SYSTEMIC), min_size=1, max_size=3),
        st.sampled_from(["adjuvant", "neoadjuvant"]),
        _maybe(st.sampled_from([0, 3, 6, 7, 11, 12, 13, 24, 60])),
    ),
    max_size=2,
)


def _metastatic(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Only the newest treatment may be ongoing (contract).
    for entry in entries[:-1]:
        if entry.get("outcome") == "ongoing":
            entry["outcome"] = "progressed"
    return entries


metastatic = st.lists(
    st.builds(
        lambda drugs, outcome, months: _drop_none({"drugs": drugs, "outcome": outcome, "months": months}),
        st.lists(st.sampled_from(SYSTEMIC), min_size=1, max_size=3),
        _maybe(st.sampled_from(["progressed", "intolerant", "ongoing", "stopped"])),
        _maybe(st.sampled_from([1, 4, 12, 30])),
    ),
    max_size=4,
).map(_metastatic)


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    sex = draw(st.sampled_from(["female", "female", "female", "male"]))
    conditions = draw(st.lists(st.sampled_from(CONDITIONS), max_size=3, unique=True))
    if sex == "male":
        conditions = [c for c in conditions if c != "pregnancy"]
    profile: dict[str, Any] = {
        "sex": sex,
        "age": draw(_maybe(st.integers(18, 95))),
        "menopausal_status": None if sex == "male" else draw(
            _maybe(st.sampled_from(["pre", "peri", "post", "unknown"]))
        ),
        "ovarian_function_suppressed": draw(_maybe(st.booleans())),
        "tumor": draw(tumor),
        "disease": draw(disease),
        "health": _drop_none({"ecog": draw(_maybe(st.integers(0, 4))),
                              "lvef_percent": draw(_maybe(st.sampled_from([35, 49, 50, 60]))),
                              "conditions": conditions}),
        "history": {"early": draw(early), "metastatic": draw(metastatic)},
        "current_medications": draw(st.lists(
            st.sampled_from(["paroxetine", "Prozac", "warfarin", "sertraline", "clarithromycin", "rifampin",
                             "St John's wort", "ondansetron", "grapefruit juice", "vitamin d", "metformin"]),
            max_size=3, unique=True)),
    }
    return _drop_none(profile)
