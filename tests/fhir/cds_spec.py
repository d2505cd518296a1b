"""Check CDS Hooks JSON against the spec's own logical models (3.0.0 ballot StructureDefinitions).

There is no official JSON Schema for CDS Hooks; the ballot's FHIR logical models in
../shared/fixtures/cdshooks are the machine-readable definition. This walks an object along
the model's element paths: cardinality (min/max), primitive types, the model's constraints
(cds-resp-1..6, implemented below by key), and the value sets the elements are bound to.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from tests.fhir.bundles import SHARED

CDS = SHARED / "fixtures" / "cdshooks"
BALLOT = CDS / "hl7-cds-hooks-3.0.0-ballot"

# The bound value sets (CDS Hooks 2.0.1 card and suggestion attributes); the ValueSet resources
# themselves are not among the fixtures, so their codes are written here with their URLs.
VALUE_SETS = {
    "http://cds-hooks.hl7.org/ValueSet/CDSIndicator": {"info", "warning", "critical"},
    "http://cds-hooks.hl7.org/ValueSet/CDSActionType": {"create", "update", "delete"},
    "http://cds-hooks.hl7.org/ValueSet/CDSSelectionBehavior": {"at-most-one", "any"},
    "http://cds-hooks.hl7.org/ValueSet/CDSLinkType": {"absolute", "smart"},
}
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@cache
def elements(model: str) -> dict[str, dict[str, Any]]:
    data = json.loads((BALLOT / f"structuredefinition-{model}.json").read_text(encoding="utf-8"))
    return {e["path"]: e for e in data["differential"]["element"]}


def constraint_keys(model: str) -> set[str]:
    return {c["key"] for e in elements(model).values() for c in e.get("constraint", [])}


def _children(model: str, path: str) -> dict[str, dict[str, Any]]:
    prefix = path + "."
    return {p[len(prefix):]: e for p, e in elements(model).items()
            if p.startswith(prefix) and "." not in p[len(prefix):]}


def _type_ok(code: str, value: Any) -> bool:
    if code in ("string", "markdown", "code", "url", "id"):
        return isinstance(value, str) and value != ""
    if code == "uuid":
        return isinstance(value, str) and bool(UUID.match(value))
    if code == "boolean":
        return isinstance(value, bool)
    if code == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if code == "Coding":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if code == "Resource":
        return isinstance(value, dict) and isinstance(value.get("resourceType"), str)
    return isinstance(value, dict)          # CDSHooksElement, Base: an object


CONSTRAINTS = {
    "cds-resp-1": lambda card: card.get("selectionBehavior") != "at-most-one"
    or sum(bool(s.get("isRecommended")) for s in card.get("suggestions", [])) <= 1,
    "cds-resp-6": lambda card: not card.get("suggestions") or "selectionBehavior" in card,
    "cds-resp-5": lambda sug: all("description" in a for a in sug.get("actions", [])),
    "cds-resp-2": lambda action: action.get("type") != "delete"
    or ("resourceId" in action and "resource" not in action),
    "cds-resp-4": lambda coding: "display" in coding,
    "cds-resp-3": lambda link: link.get("type") == "smart" or "appContext" not in link,
}


def validate(obj: Any, model: str, strict: bool = False) -> list[str]:
    """Problems of `obj` as an instance of the logical model (empty when it conforms)."""
    problems: list[str] = []
    _walk(obj, model, model, problems, strict)
    return problems


def _walk(obj: Any, model: str, path: str, problems: list[str], strict: bool) -> None:
    children = _children(model, path)
    if not isinstance(obj, dict):
        problems.append(f"{path}: expected an object")
        return
    if strict:
        for key in obj:
            if key not in children and key != "extension":
                problems.append(f"{path}.{key}: not in the model")
    for name, element in children.items():
        here = f"{path}.{name}"
        if element.get("contentReference"):
            element = {**elements(model)[element["contentReference"].lstrip("#")], "min": element.get("min", 0),
                       "max": element.get("max", "*")}
            target = elements(model)[element["path"]]["path"]
        else:
            target = here
        value = obj.get(name)
        if value is None:
            if element.get("min", 0) >= 1:
                problems.append(f"{here}: required")
            continue
        pair = _children(model, here)
        if set(pair) == {"key", "value"}:
            # A FHIR logical model spells a JSON map as repeated key/value pairs (e.g. prefetch).
            value_codes = [c["code"] for c in pair["value"].get("type", [])]
            if not isinstance(value, dict) or not all(any(_type_ok(c, v) for c in value_codes) for v in value.values()):
                problems.append(f"{here}: expected a map of {'/'.join(value_codes)}")
            continue
        items = value if element.get("max") == "*" else [value]
        if element.get("max") == "*" and not isinstance(value, list):
            problems.append(f"{here}: expected a list")
            continue
        if element.get("max") != "*" and isinstance(value, list):
            problems.append(f"{here}: expected one value, got a list")
            continue
        codes = [t["code"] for t in element.get("type", [])] or ["CDSHooksElement"]
        bound = element.get("binding", {}).get("valueSet")
        for item in items:
            if not any(_type_ok(c, item) for c in codes):
                problems.append(f"{here}: {item!r} is not a {'/'.join(codes)}")
                continue
            if bound and item not in VALUE_SETS[bound]:
                problems.append(f"{here}: {item!r} not in {bound}")
            if "(<140 char)" in element.get("short", "") and len(item) >= 140:
                problems.append(f"{here}: {len(item)} characters; the spec asks for fewer than 140")
            for constraint in element.get("constraint", []):
                if not CONSTRAINTS[constraint["key"]](item):
                    problems.append(f"{here}: violates {constraint['key']} ({constraint['human']})")
            if any(c.endswith("CDSHooksElement") for c in codes) and isinstance(item, dict):
                _walk(item, model, target, problems, strict)


def example(name: str) -> Any:
    return json.loads((CDS / name).read_text(encoding="utf-8"))
