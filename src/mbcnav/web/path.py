"""A simple picture of the treatment path: what was tried, what fits now, what often comes later.

"Later" is not a second set of rules: it asks the engine itself. We pretend the first preferred
option was given and stopped working, and ask again for that profile, twice. So the sketch always
agrees with the rules, follows the person's subtype and biomarkers, and changes when the
knowledge base does. It is a usual sequence, not a plan, and the page says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from mbcnav.engine import recommend
from mbcnav.profile import Profile, ProfileError

Stage = Literal["past", "now", "later"]
LOOKAHEAD = 2
OUTCOME_WORDS = {
    "progressed": "stopped working", "intolerant": "stopped because of side effects",
    "ongoing": "taking it now", "stopped": "stopped",
}


@dataclass(frozen=True)
class PathStep:
    stage: Stage
    heading: str
    title: str
    note: str = ""


def _drug_names(drugs: list[str]) -> str:
    from mbcnav.web.view import drug_info  # view imports this module; import late to avoid a cycle

    return " + ".join(drug_info(d).name for d in drugs)


def treatment_path(profile: Profile, rec: dict[str, Any]) -> list[PathStep]:
    steps: list[PathStep] = []
    history = profile.history.metastatic
    for i, line in enumerate(history, start=1):
        words = OUTCOME_WORDS.get(line.outcome or "", "")
        heading = "Now" if line.outcome == "ongoing" else f"Treatment {i}"
        steps.append(PathStep("past", heading, _drug_names(line.drugs), words))
    if not rec["options"]:
        return steps
    on_treatment = bool(history) and history[-1].outcome == "ongoing"
    top = rec["options"][0]
    steps.append(PathStep("now", "If it stops working" if on_treatment else "Options now",
                          top.get("plain_title") or top["title"], _alternatives(rec)))
    steps.extend(_later(profile, top))
    return steps


def _alternatives(rec: dict[str, Any]) -> str:
    others = len(rec["options"]) - 1
    if others <= 0:
        return ""
    return f"and {others} other option{'s' if others > 1 else ''} below"


def _later(profile: Profile, top: dict[str, Any]) -> list[PathStep]:
    data: dict[str, Any] = copy.deepcopy(profile.model_dump(exclude_none=True))
    lines: list[dict[str, Any]] = data.setdefault("history", {}).setdefault("metastatic", [])
    if lines and lines[-1].get("outcome") == "ongoing":
        lines[-1]["outcome"] = "progressed"
    seen = {top["id"]}
    steps: list[PathStep] = []
    current = top
    for n in range(LOOKAHEAD):
        # Pretend the current step was given (one drug of each component) and then stopped working.
        lines.append({"drugs": [component[0] for component in current["drugs"]], "outcome": "progressed",
                      "months": 12})
        data.setdefault("disease", {})["visceral_crisis"] = False  # a crisis is about now, not later
        try:
            options = recommend(data)["options"]
        except ProfileError:
            break
        following = next((o for o in options if o["id"] not in seen), None)
        if following is None:
            break
        seen.add(following["id"])
        steps.append(PathStep("later", "Often next" if n == 0 else "Later",
                              following.get("plain_title") or following["title"]))
        current = following
    return steps
