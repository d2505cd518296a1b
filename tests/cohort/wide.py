"""Profiles drawn uniformly over every value the contract allows (unlike the realistic synth).

The realistic cohort rarely reaches corners such as a pregnant woman with HER2-positive brain
metastases, a man on an AI, IHC 2+ without ISH or brand names in every list; this generator
reaches them all the time. Values come from the same lists the property tests use.
"""

from __future__ import annotations

import random
from typing import Any

from mbcnav.profile import CONDITIONS, SITES
from tests.properties.strategies import SYSTEMIC

MEDICINES = ["paroxetine", "Prozac", "warfarin", "sertraline", "clarithromycin", "rifampin", "St John's wort",
             "ondansetron", "grapefruit juice", "vitamin d", "metformin", "citalopram", "amiodarone"]
GIVEN = [*SYSTEMIC, "clinical_trial", "zoledronic_acid", "denosumab", "radiation", "ovarian_suppression", "Femara"]


def _maybe(rng: random.Random, value: Any, p: float = 0.3) -> Any:
    return None if rng.random() < p else value


def _given(rng: random.Random, names: list[str]) -> list[str]:
    chosen = rng.sample(names, rng.randint(1, 3))
    return chosen + chosen[:1] if rng.random() < 0.05 else chosen  # a name typed twice counts once


def profile(rng: random.Random, drugs: list[str] = SYSTEMIC, given: list[str] = GIVEN) -> dict[str, Any]:
    sex = rng.choice(["female", "female", "female", "male"])
    ihc = rng.choice(["0", "ultralow", "1+", "2+", "3+", "unknown"])
    ish = rng.choice(["amplified", "not_amplified", "not_done"])
    if ihc == "3+" and ish == "not_amplified":
        ish = "not_done"
    conditions = rng.sample(CONDITIONS, rng.randint(0, 3))
    if sex == "male":
        conditions = [c for c in conditions if c != "pregnancy"]
    metastatic = [
        {k: v for k, v in {
            "drugs": rng.sample(drugs, rng.randint(1, 3)),
            "outcome": _maybe(rng, rng.choice(["progressed", "intolerant", "stopped"])),
            "months": _maybe(rng, rng.choice([1, 4, 12, 30])),
        }.items() if v is not None}
        for _ in range(rng.choice([0, 0, 1, 2, 3, 4]))
    ]
    if metastatic and rng.random() < 0.3:
        metastatic[-1]["outcome"] = "ongoing"
    early = [
        {k: v for k, v in {
            "drugs": rng.sample(drugs, rng.randint(1, 3)),
            "setting": rng.choice(["adjuvant", "neoadjuvant"]),
            "months_since_end": _maybe(rng, rng.choice([0, 3, 6, 7, 11, 12, 13, 24, 60])),
        }.items() if v is not None}
        for _ in range(rng.choice([0, 0, 1, 2]))
    ]
    brain = _maybe(rng, {k: v for k, v in {
        "active": _maybe(rng, rng.random() < 0.5), "symptomatic": _maybe(rng, rng.random() < 0.5),
        "count": _maybe(rng, rng.randint(0, 6))}.items() if v is not None}, 0.6)
    out: dict[str, Any] = {
        "patient_id": f"W{rng.getrandbits(40):012x}",
        "sex": sex,
        "age": _maybe(rng, rng.randint(18, 95)),
        "menopausal_status": None if sex == "male" else _maybe(rng, rng.choice(["pre", "peri", "post", "unknown"])),
        "ovarian_function_suppressed": _maybe(rng, rng.random() < 0.5),
        "tumor": {k: v for k, v in {
            "er": rng.choice(["positive", "low", "negative", "unknown"]),
            "pr": rng.choice(["positive", "negative", "unknown"]),
            "her2": {"ihc": ihc, "ish": ish},
            "pik3ca": rng.choice(["mutated", "wild_type", "unknown"]),
            "akt1": rng.choice(["mutated", "wild_type", "unknown"]),
            "pten": rng.choice(["altered", "wild_type", "unknown"]),
            "esr1": rng.choice(["mutated", "wild_type", "unknown"]),
            "germline_brca": rng.choice(["brca1", "brca2", "negative", "unknown"]),
            "germline_palb2": rng.choice(["mutated", "negative", "unknown"]),
            "pdl1_cps": _maybe(rng, rng.choice([0, 1, 5, 9, 9.9, 10, 15, 40])),
            "msi": rng.choice(["high", "stable", "unknown"]),
            "tmb": _maybe(rng, rng.choice([0.5, 5, 9.9, 10, 25])),
            "ntrk_fusion": rng.choice(["present", "absent", "unknown"]),
        }.items() if v is not None},
        "disease": {k: v for k, v in {
            "presentation": _maybe(rng, rng.choice(["de_novo", "recurrent"])),
            "sites": _maybe(rng, rng.sample(SITES, rng.randint(0, 4))),
            "visceral_crisis": _maybe(rng, rng.random() < 0.2),
            "symptomatic": _maybe(rng, rng.random() < 0.5),
            "brain_metastases": brain,
            "spinal_cord_compression": _maybe(rng, rng.random() < 0.1),
            "oligometastatic": _maybe(rng, rng.random() < 0.2),
        }.items() if v is not None},
        "health": {k: v for k, v in {
            "ecog": _maybe(rng, rng.randint(0, 4)),
            "lvef_percent": _maybe(rng, rng.choice([35, 49, 50, 60])),
            "conditions": conditions,
        }.items() if v is not None},
        "history": {"early": early, "metastatic": metastatic},
        "current_medications": rng.sample(MEDICINES, rng.randint(0, 3)),
        "given_drugs": _maybe(rng, _given(rng, given), 0.2),
    }
    return {k: v for k, v in out.items() if v is not None}


def profiles(n: int, seed: int, drugs: list[str] = SYSTEMIC, given: list[str] = GIVEN) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [profile(rng, drugs, given) for _ in range(n)]
