"""Plain-text rendering of a Recommendation, for the terminal."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from mbcnav.render.labels import SUBTYPE_LABEL, TIER_LABEL


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text, width=88, initial_indent=indent, subsequent_indent=indent)


def drug_line(drugs: list[list[str]]) -> str:
    parts = [" or ".join(d.replace("_", " ") for d in component) for component in drugs]
    return "  +  ".join(f"({p})" if " or " in p and len(drugs) > 1 else p for p in parts)


def render(rec: dict[str, Any], possible: Mapping[str, list[dict[str, Any]]] | None = None) -> str:
    """The recommendation as text; `possible` (whatif.what_if) adds what each test result could add."""
    out: list[str] = []
    out.append("mbcnav — treatment options to discuss with your care team")
    out.append(_wrap(rec["disclaimer"], ""))
    out.append("")
    if rec["warnings"]:
        out.append("IMPORTANT")
        out.extend(_wrap(f"! {w}") for w in rec["warnings"])
        out.append("")
    out.append(f"Cancer type: {SUBTYPE_LABEL.get(rec['subtype'], rec['subtype'])}")
    out.append(f"HER2 category: {rec['her2_category']}")
    out.append(f"Decision: {rec['decision_point']}")
    out.append("")
    out.append("OPTIONS THAT FIT (best first)")
    if not rec["options"]:
        out.append(_wrap("No systemic option matched this profile. The tests, warnings and "
                         "'what does not fit' notes below explain why."))
    for i, option in enumerate(rec["options"], 1):
        out.append(f"  {i}. {option['plain_title']}  [{TIER_LABEL[option['tier']]}]")
        out.append(_wrap(f"Drugs: {drug_line(option['drugs'])}", "     "))
        for why in option["why"]:
            out.append(_wrap(f"+ {why}", "     "))
        for caution in option["cautions"]:
            out.append(_wrap(f"! {caution}", "     "))
        sources = "; ".join(e["source_id"] for e in option["evidence"])
        out.append(_wrap(f"Sources: {sources}", "     "))
    out.append("")
    if rec["local_and_supportive"]:
        out.append("CARE FOR SYMPTOMS, BONES AND SPECIFIC SITES")
        for entry in rec["local_and_supportive"]:
            flag = "URGENT: " if entry.get("urgent") else ""
            out.append(f"  - {flag}{entry['plain_title']}")
            for why in entry["why"]:
                out.append(_wrap(f"+ {why}", "     "))
        out.append("")
    if rec["tests_to_consider"]:
        out.append("TESTS THAT COULD OPEN MORE OPTIONS")
        for test in rec["tests_to_consider"]:
            out.append(f"  - {test['test']}")
            out.append(_wrap(test["why"], "     "))
            for outcome in (possible or {}).get(test.get("id", ""), []):
                added = "; ".join(o["plain_title"] for o in outcome["options"])
                out.append(textwrap.fill(f"{outcome['label']}, these could be added: {added}", width=88,
                                         initial_indent="     ? ", subsequent_indent="       "))
        out.append("")
    if rec["interactions"]:
        out.append("CHECK WITH YOUR PHARMACIST: MEDICINE INTERACTIONS")
        for inter in rec["interactions"]:
            pair = " + ".join(d.replace("_", " ") for d in inter["drugs"])
            out.append(f"  - [{inter['severity']}] {pair}")
            out.append(_wrap(inter["advice"], "     "))
        out.append("")
    if rec["not_recommended"]:
        out.append("WHAT DOES NOT FIT, AND WHY")
        for entry in rec["not_recommended"]:
            out.append(f"  - {entry['plain_title']}")
            for why in entry["why"]:
                out.append(_wrap(why, "     "))
        out.append("")
    if rec["questions_for_doctor"]:
        out.append("QUESTIONS TO ASK YOUR DOCTOR")
        out.extend(f"  [ ] {q}" for q in rec["questions_for_doctor"])
        out.append("")
    out.append(f"Knowledge version {rec['knowledge_version']}")
    return "\n".join(out) + "\n"
