"""What-if: the options a pending test's result would add, by evaluating the profile with it.

`tests_to_consider` says which tests could help; for tests with spelled-out results (tests.yaml
`outcomes`, e.g. "ESR1 mutated") this step runs the engine once per result and keeps the
systemic options that result would add. It is shown apart from the options and labelled as a
possibility: an unknown result never counts as found. The recommendation itself is unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mbcnav.engine import evaluate
from mbcnav.knowledge.loader import Knowledge, knowledge
from mbcnav.profile import Profile, ProfileError, parse_profile


def with_values(profile: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the contract profile with dotted paths set ("tumor.her2.ish": "amplified")."""
    out: dict[str, Any] = copy.deepcopy(dict(profile))
    for path, value in values.items():
        node = out
        *parents, leaf = path.split(".")
        for name in parents:
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        node[leaf] = value
    return out


def what_if(profile: Mapping[str, Any], rec: Mapping[str, Any] | None = None,
            kb: Knowledge | None = None) -> dict[str, list[dict[str, Any]]]:
    """Test id -> [{label, options: [{id, title, plain_title, tier}]}] for results that add options.

    `rec` is the profile's own recommendation (computed when not given). A result that makes an
    impossible profile (the parser refuses it) or adds nothing is left out.
    """
    kb = kb or knowledge()
    rec = rec if rec is not None else evaluate(profile, kb).recommendation
    current = {o["id"] for o in rec["options"]}
    out: dict[str, list[dict[str, Any]]] = {}
    for suggestion in rec["tests_to_consider"]:
        test = kb.tests.get(suggestion.get("id", ""))
        if test is None or not test.outcomes:
            continue
        found = []
        for outcome in test.outcomes:
            try:
                candidate: Profile = parse_profile(with_values(profile, outcome.set))
            except ProfileError:
                continue
            added = [{"id": o["id"], "title": o["title"], "plain_title": o["plain_title"], "tier": o["tier"]}
                     for o in evaluate(candidate, kb).recommendation["options"] if o["id"] not in current]
            if added:
                found.append({"label": outcome.label, "options": added})
        if found:
            out[test.id] = found
    return out
