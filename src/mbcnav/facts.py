"""Profile -> derived facts: one flat row of the columns declared in knowledge/data/facts.yaml.

Pure functions. ``None`` always means unknown; nothing unknown is turned into a positive result.
The cohort engine derives the same columns set-wise, and a parity test holds the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mbcnav.profile import SITES, Profile

Facts = dict[str, Any]

VISCERAL_SITES = ("liver", "lung", "pleura", "peritoneum")
ENDOCRINE_SENSITIVE_MONTHS = 12   # ABC5: relapse >12 months after adjuvant endocrine therapy
EARLY_RELAPSE_MONTHS = 6          # T-DXd labels: during or within 6 months of (neo)adjuvant therapy
MENOPAUSE_AGE = 60                # NCCN: age >= 60 defines menopause when status is not known


@dataclass(frozen=True)
class DrugClasses:
    """What the facts need to know about drugs: classes per drug id and combination parts."""

    classes: Mapping[str, frozenset[str]]
    counts_as: Mapping[str, tuple[str, ...]]
    flag_classes: tuple[str, ...]
    flag_drugs: tuple[str, ...]

    def expand(self, drugs: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for drug in drugs:
            out.add(drug)
            out.update(self.counts_as.get(drug, ()))
        return out

    def classes_of(self, drugs: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for drug in drugs:
            out |= self.classes.get(drug, frozenset())
        return out


def _or3(values: Sequence[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _known(value: str) -> str | None:
    return None if value == "unknown" else value


def her2_category(ihc: str, ish: str) -> str | None:
    """HER2 category (ASCO/CAP 2018/2023 algorithm; ultralow per the 2025 T-DXd label)."""
    if ish == "amplified" or ihc == "3+":
        return "positive"
    if ihc == "2+":
        return "low" if ish == "not_amplified" else None
    if ihc == "1+":
        return "low"
    if ihc == "ultralow":
        return "ultralow"
    if ihc == "0":
        return "zero"
    return None


def hormone_receptor(er: str | None, pr: str | None) -> str | None:
    if er in ("positive", "low") or pr == "positive":
        return "positive"
    if er == "negative" and pr == "negative":
        return "negative"
    return None


def subtype(hr: str | None, her2_positive: bool | None) -> str | None:
    if hr is None or her2_positive is None:
        return None
    if her2_positive:
        return "hr_positive_her2_positive" if hr == "positive" else "hr_negative_her2_positive"
    return "hr_positive_her2_negative" if hr == "positive" else "triple_negative"


def _menopause(p: Profile) -> tuple[str | None, bool | None, bool | None]:
    """(menopause column, effectively postmenopausal, needs ovarian suppression)."""
    suppressed = bool(p.ovarian_function_suppressed)
    if p.sex == "male":
        return "not_applicable", False, False
    status = _known(p.menopausal_status or "unknown")
    if status == "post" or suppressed:
        return status, True, False
    if status in ("pre", "peri"):
        return status, False, True
    if p.age is not None and p.age >= MENOPAUSE_AGE:
        return status, True, False
    return status, None, None


def _endocrine_sensitivity(
    early_et_free: list[float | None], progressed_on_et_met: bool
) -> tuple[str | None, float | None]:
    """ABC5 definitions over early endocrine therapy and metastatic progression."""
    if progressed_on_et_met:
        return "resistant", min((m for m in early_et_free if m is not None), default=None)
    if not early_et_free:
        return "sensitive", None
    if any(m is None for m in early_et_free):
        known = [m for m in early_et_free if m is not None]
        if known and min(known) <= ENDOCRINE_SENSITIVE_MONTHS:
            return "resistant", min(known)
        return None, None
    shortest = min(m for m in early_et_free if m is not None)
    return ("resistant" if shortest <= ENDOCRINE_SENSITIVE_MONTHS else "sensitive"), shortest


def _relapse_within(months: list[float | None], limit: float) -> bool | None:
    """Did the cancer come back during or within `limit` months of any of these treatments?"""
    if not months:
        return False
    return _or3([None if m is None else m <= limit for m in months])


def derive(
    profile: Profile,
    drugs: DrugClasses,
    medication_ids: frozenset[str] = frozenset(),
    qt_medications: frozenset[str] = frozenset(),
) -> Facts:
    """All fact columns for one profile.

    `medication_ids` are the current medicines already matched to ids (engine._medication_ids);
    `qt_medications` is the knowledge base's QT-prolonging group.
    """
    t, d, h = profile.tumor, profile.disease, profile.health
    f: Facts = {"sex": profile.sex, "age": profile.age}

    f["menopause"], f["postmenopausal"], f["needs_ovarian_suppression"] = _menopause(profile)
    f["ovarian_suppressed"] = bool(profile.ovarian_function_suppressed)

    er, pr = _known(t.er), _known(t.pr)
    f["er"], f["pr"] = er, pr
    f["hr"] = hormone_receptor(er, pr)
    f["er_low"] = None if er is None else er == "low"
    her2 = her2_category(t.her2.ihc, t.her2.ish)
    f["her2"] = her2
    if her2 is not None:
        her2_negative: bool | None = her2 != "positive"
    else:
        her2_negative = True if t.her2.ish == "not_amplified" else None
    f["her2_negative"] = her2_negative
    f["her2_equivocal"] = t.her2.ihc == "2+" and t.her2.ish == "not_done"
    f["subtype"] = subtype(f["hr"], None if her2_negative is None else not her2_negative)

    for gene in ("pik3ca", "akt1", "pten", "esr1"):
        f[gene] = _known(getattr(t, gene))
    f["pi3k_pathway_altered"] = _or3(
        [
            None if f["pik3ca"] is None else f["pik3ca"] == "mutated",
            None if f["akt1"] is None else f["akt1"] == "mutated",
            None if f["pten"] is None else f["pten"] == "altered",
        ]
    )
    f["gbrca"] = _known(t.germline_brca)
    f["gbrca_mutated"] = None if f["gbrca"] is None else f["gbrca"] in ("brca1", "brca2")
    f["gpalb2"] = _known(t.germline_palb2)
    f["pdl1_cps"] = t.pdl1_cps
    f["msi"] = _known(t.msi)
    f["tmb"] = t.tmb
    f["ntrk"] = _known(t.ntrk_fusion)

    f.update(_disease_facts(profile))
    f["ecog"] = h.ecog
    f["lvef"] = h.lvef_percent
    conditions = set(h.conditions)
    for name, column in (
        ("diabetes", "cond_diabetes"), ("interstitial_lung_disease", "cond_ild"),
        ("heart_failure", "cond_heart_failure"), ("long_qt", "cond_long_qt"),
        ("liver_impairment", "cond_liver_impairment"), ("neuropathy", "cond_neuropathy"),
        ("pregnancy", "pregnant"),
    ):
        f[column] = name in conditions

    f.update(_history_facts(profile, drugs))
    f["presentation"] = d.presentation
    f["taking_qt_drug"] = bool(medication_ids & qt_medications)
    return f


def _disease_facts(profile: Profile) -> Facts:
    d = profile.disease
    f: Facts = {}
    sites = set(d.sites) if d.sites is not None else None
    brain = d.brain_metastases
    if sites is not None and brain is not None and brain.count != 0:
        sites.add("brain")
    f["sites_known"] = sites is not None
    for site in SITES:
        f[f"site_{site}"] = None if sites is None else site in sites
    f["visceral"] = None if sites is None else bool(sites & set(VISCERAL_SITES))
    f["bone_only"] = None if sites is None else sites == {"bone"}
    f["site_count"] = None if sites is None else float(len(sites))
    f["visceral_crisis"] = d.visceral_crisis
    f["symptomatic"] = d.symptomatic
    f["spinal_cord_compression"] = d.spinal_cord_compression
    f["oligometastatic"] = d.oligometastatic
    if brain is not None:
        brain_mets: bool | None = brain.count != 0
    else:
        brain_mets = None if sites is None else "brain" in sites
    f["brain_mets"] = brain_mets
    f["brain_active"] = False if brain_mets is False else (brain.active if brain else None)
    f["brain_symptomatic"] = False if brain_mets is False else (brain.symptomatic if brain else None)
    f["brain_count"] = None if brain is None or brain.count is None else float(brain.count)
    local = None if sites is None else bool(sites & {"chest_wall", "breast"})
    f["local_recurrence"] = None if local is None else (local and d.presentation != "de_novo")
    return f


def _history_facts(profile: Profile, drugs: DrugClasses) -> Facts:
    hist = profile.history
    f: Facts = {}
    met_sets = [drugs.expand(e.drugs) for e in hist.metastatic]
    early_sets = [drugs.expand(e.drugs) for e in hist.early]
    met_classes = [drugs.classes_of(s) for s in met_sets]
    early_classes = [drugs.classes_of(s) for s in early_sets]

    met_all: set[str] = set().union(*met_sets) if met_sets else set()
    early_all: set[str] = set().union(*early_sets) if early_sets else set()
    met_cls: set[str] = set().union(*met_classes) if met_classes else set()
    early_cls: set[str] = set().union(*early_classes) if early_classes else set()
    for c in drugs.flag_classes:
        f[f"met_{c}"] = c in met_cls
        f[f"prior_{c}"] = c in met_cls or c in early_cls
    for drug in drugs.flag_drugs:
        f[f"met_{drug}"] = drug in met_all
        f[f"prior_{drug}"] = drug in met_all or drug in early_all

    f["met_lines"] = float(len(hist.metastatic))
    f["line"] = float(len(hist.metastatic) + 1)
    f["met_chemo_lines"] = float(sum("chemotherapy" in c for c in met_classes))
    f["met_antiher2_lines"] = float(sum("anti_her2" in c for c in met_classes))
    f["met_endocrine_lines"] = float(sum("endocrine" in c for c in met_classes))
    f["on_treatment"] = bool(hist.metastatic) and hist.metastatic[-1].outcome == "ongoing"
    f["progressed_on_et_met"] = any(
        "endocrine" in c and e.outcome == "progressed" for c, e in zip(met_classes, hist.metastatic, strict=True)
    )

    def months_for(cls: str) -> list[float | None]:
        return [e.months_since_end for c, e in zip(early_classes, hist.early, strict=True) if cls in c]

    et_months = months_for("endocrine")
    f["early_endocrine"] = bool(et_months)
    f["early_chemo"] = bool(months_for("chemotherapy"))
    f["early_antiher2"] = bool(months_for("anti_her2"))
    f["early_immunotherapy"] = bool(months_for("immunotherapy"))
    f["endocrine_sensitivity"], f["et_free_months"] = _endocrine_sensitivity(et_months, f["progressed_on_et_met"])
    all_months = [e.months_since_end for e in hist.early]
    f["dfi_months"] = None if not all_months or any(m is None for m in all_months) else min(
        m for m in all_months if m is not None
    )
    f["chemo_relapse_6m"] = _relapse_within(months_for("chemotherapy"), EARLY_RELAPSE_MONTHS)
    f["antiher2_relapse_6m"] = _relapse_within(months_for("anti_her2"), EARLY_RELAPSE_MONTHS)
    return f
