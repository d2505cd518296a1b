"""The "About your cancer" form: form answers <-> contract profile, and errors -> form fields.

Answers are a flat mapping keyed by profile path ("tumor.her2.ihc", "history.metastatic.0.drugs"),
which is also each input's `name`. That makes the round trip mechanical, and lets a ProfileError
that names `history.metastatic[0].drugs` appear next to exactly that input. Only answers the
person gave are kept ("I don't know" is the absence of an answer), so the session stays small.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from starlette.datastructures import FormData

from mbcnav.knowledge.loader import knowledge
from mbcnav.profile import ProfileError, parse_profile
from mbcnav.vocabulary import NON_DRUG
from mbcnav.web.content import FormField, form_fields
from mbcnav.web.slots import Lru

Answers = dict[str, str | list[str]]
DRUGS_PER_ROW = 4   # AC-T before surgery is four drugs
INTEGER_FIELDS = frozenset({"age", "health.ecog", "disease.brain_metastases.count"})
ROW_PARTS = {"history.early": ("setting", "months_since_end"), "history.metastatic": ("outcome", "months")}
OUTCOMES = (
    ("progressed", "It stopped working (the cancer grew)"),
    ("intolerant", "I stopped because of side effects"),
    ("ongoing", "I am still taking it"),
    ("stopped", "I stopped for another reason"),
)
SETTINGS = (("adjuvant", "After surgery"), ("neoadjuvant", "Before surgery"))
NON_DRUG_LABELS = {
    "radiation": "Radiation", "surgery": "Surgery", "clinical_trial": "Clinical trial",
    "palliative_care": "Palliative care", "ovarian_suppression": "Ovarian suppression (shots or surgery)",
}


@dataclass
class Parsed:
    profile: dict[str, Any] | None
    errors: dict[str, list[str]] = field(default_factory=dict)   # answer key ("" = whole form) -> messages

    @cached_property
    def key(self) -> str:
        """The profile as canonical JSON: the key of every per-profile cache (computed once)."""
        return json.dumps(self.profile, sort_keys=True, separators=(",", ":"))


@cache
def drug_choices() -> tuple[str, ...]:
    """Datalist entries, searchable by generic or brand name without JavaScript.

    'Ribociclib (Kisqali)' for each drug, plus 'Ogivri (trastuzumab)' for brands beyond the first
    two, so a long list of biosimilar names does not crowd one line.
    """
    out = [NON_DRUG_LABELS[n] for n in NON_DRUG]
    for drug in sorted(knowledge().drugs.values(), key=lambda d: d.name.lower()):
        out.append(f"{drug.name} ({', '.join(drug.brands[:2])})" if drug.brands else drug.name)
        out.extend(f"{brand} ({drug.name.lower()})" for brand in drug.brands[2:])
    return tuple(out)


def drug_label(drug_id: str) -> str:
    if drug_id in NON_DRUG_LABELS:
        return NON_DRUG_LABELS[drug_id]
    drug = knowledge().drugs.get(drug_id)
    if drug is None:
        return drug_id.replace("_", " ")
    return f"{drug.name} ({drug.brands[0]})" if drug.brands else drug.name


def row_keys(name: str, rows: int) -> Iterable[tuple[int, str, str, str]]:
    first, second = ROW_PARTS[name]
    for i in range(rows):
        yield i, f"{name}.{i}.drugs", f"{name}.{i}.{first}", f"{name}.{i}.{second}"


def answers_from_form(form: FormData) -> Answers:
    answers: Answers = {}
    for spec in form_fields().values():
        if spec.kind == "checkboxes":
            ticked = [v for v in form.getlist(spec.name) if isinstance(v, str) and v]
            if ticked:
                answers[spec.name] = ticked
        elif spec.kind == "treatments":
            for _, drugs_key, first_key, second_key in row_keys(spec.name, spec.rows):
                drugs = [v.strip() for v in form.getlist(drugs_key) if isinstance(v, str) and v.strip()]
                if drugs:
                    answers[drugs_key] = drugs
                for key in (first_key, second_key):
                    _keep_text(answers, key, form.get(key))
        else:
            _keep_text(answers, spec.name, form.get(spec.name))
    return answers


def _keep_text(answers: Answers, key: str, value: object) -> None:
    if isinstance(value, str) and value.strip():
        answers[key] = value.strip()[:2000]


def parse_answers(answers: Mapping[str, str | list[str]]) -> Parsed:
    """Answers -> validated contract profile, or the problems keyed by answer key."""
    profile: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for spec in form_fields().values():
        if spec.kind == "treatments":
            _treatments(spec, answers, profile, errors)
            continue
        raw = answers.get(spec.name)
        try:
            value = _convert(spec, raw)
        except ValueError as err:
            errors.setdefault(spec.name, []).append(str(err))
            continue
        if value is not None:
            _put(profile, spec.name, value)
    # Validate even when some answers could not be read, so every problem shows at once. A missing
    # sex is stood in for by "female" here only: no check fails for a woman that passes for a man.
    try:
        parse_profile(profile if "sex" in profile else {**profile, "sex": "female"})
    except ProfileError as err:
        for problem in err.problems:
            key, message = _locate(problem)
            if key not in errors:
                errors.setdefault(key, []).append(message)
    return Parsed(None if errors else profile, errors)


_PARSED: Lru[str, Parsed] = Lru(1024)


def parse_answers_cached(answers: Mapping[str, str | list[str]]) -> Parsed:
    """parse_answers, remembered per distinct answers: every page view of a session re-reads them."""
    return _PARSED.get(json.dumps(answers, sort_keys=True, separators=(",", ":")), lambda: parse_answers(answers))


def _convert(spec: FormField, raw: str | list[str] | None) -> Any:
    if spec.kind == "checkboxes":
        chosen = [v for v in (raw if isinstance(raw, list) else []) if v != "unknown"]
        return chosen or None
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if spec.kind == "text":
        items = [part.strip() for part in re.split(r"[\n,;]+", raw or "") if part.strip()]
        return items or None
    if raw is None or raw == "" or raw == spec.unknown_value:
        if spec.required:
            raise ValueError("Please answer this question. We need it to show options.")
        return None
    if spec.kind == "yesno":
        if raw not in ("yes", "no"):
            raise ValueError("Choose yes, no or I don't know.")
        return raw == "yes"
    if spec.kind == "number":
        return _number(spec.name, raw)
    allowed = [value for value, _ in spec.choices]
    if raw not in allowed:
        raise ValueError("Choose one of the answers shown.")
    return int(raw) if spec.name in INTEGER_FIELDS else raw


def _number(name: str, raw: str) -> float | int:
    text = raw.replace(",", ".").strip().rstrip("%").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError("Enter a number, or leave it empty if you don't know.") from None
    if name in INTEGER_FIELDS:
        if not value.is_integer():
            raise ValueError("Enter a whole number.")
        return int(value)
    return value


def _treatments(spec: FormField, answers: Mapping[str, str | list[str]], profile: dict[str, Any],
                errors: dict[str, list[str]]) -> None:
    rows: list[dict[str, Any]] = []
    first, second = ROW_PARTS[spec.name]
    for _, drugs_key, first_key, second_key in row_keys(spec.name, spec.rows):
        names = answers.get(drugs_key) or []
        drugs = [_strip_brand_note(n) for n in (names if isinstance(names, list) else [names])]
        extra = {first: answers.get(first_key), second: answers.get(second_key)}
        if not drugs:
            if any(extra.values()):
                errors.setdefault(drugs_key, []).append("Add the medicine names, or clear this row.")
            continue
        row: dict[str, Any] = {"drugs": drugs}
        if isinstance(extra[first], str):
            row[first] = extra[first]
        months = extra[second]
        if isinstance(months, str):
            try:
                row[second] = _number(second, months)
            except ValueError as err:
                errors.setdefault(second_key, []).append(str(err))
        rows.append(row)
    if rows:
        _put(profile, spec.name, rows)


def _strip_brand_note(name: str) -> str:
    # "Ribociclib (Kisqali)" from the datalist -> "Ribociclib"; a typed "Kisqali" stays as it is.
    return name.split("(", 1)[0].strip() or name


def _put(profile: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = profile
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


_PROBLEM = re.compile(r"^([a-z_][a-z0-9_.\[\]]*): (.*)$", re.S)
_UNKNOWN_DRUG = re.compile(r"unknown drug name '(.+?)'(?:; closest known names: (.*))?$")


def _locate(problem: str) -> tuple[str, str]:
    """'history.metastatic[0].drugs: unknown drug ...' -> ('history.metastatic.0.drugs', plain message)."""
    match = _PROBLEM.match(problem)
    if not match:
        return "", problem
    path = re.sub(r"\[(\d+)\]", r".\1", match.group(1))
    message = match.group(2)
    # A message may repeat its own field ("tumor.her2: IHC 3+ ..."); show only the sentence.
    inner = _PROBLEM.match(message)
    if inner:
        message = inner.group(2)
    return _answer_key(path), _plain(message)


@cache
def answer_keys() -> tuple[str, ...]:
    """Every key an answer can have, in form order (treatment groups also name their fieldset)."""
    keys: list[str] = []
    for spec in form_fields().values():
        keys.append(spec.name)
        if spec.kind == "treatments":
            for _, drugs_key, first_key, second_key in row_keys(spec.name, spec.rows):
                keys.extend((drugs_key, first_key, second_key))
    return tuple(keys)


def _answer_key(path: str) -> str:
    keys = answer_keys()
    if path in keys:
        return path
    below = [k for k in keys if k.startswith(path + ".")]
    if below:
        return below[0]
    above = [k for k in keys if path.startswith(k + ".")]
    return max(above, key=len) if above else ""


# The engine's messages are written for JSON users ("enter ish: not_done"); say the same for
# someone filling in this form. Matched by a stable fragment of the engine's message.
_FORM_WORDING = {
    "IHC 3+ with ISH not amplified": (
        "An IHC score of 3+ with a negative ISH test is not a valid pair. Check the report: choose "
        "the IHC score it gives, and choose \"Not done\" for ISH if it was not needed."
    ),
    "applies to women only": "This question is for women. For a man, choose \"I don't know\".",
    "cannot be recorded for a man": "Pregnancy cannot apply to a man. Please untick it, or check the first question.",
    "only the last (newest) treatment can be 'ongoing'": (
        "Only the newest treatment can be one you are still taking. List treatments oldest first."
    ),
}


def _plain(message: str) -> str:
    for fragment, wording in _FORM_WORDING.items():
        if fragment in message:
            return wording
    unknown = _UNKNOWN_DRUG.search(message)
    if unknown:
        name, close = unknown.group(1), unknown.group(2)
        hint = f" Did you mean {' or '.join(c.replace('_', ' ') for c in close.split(', '))}?" if close else ""
        return f"We don't know the medicine “{name}”.{hint} Check the spelling, or pick a name from the list."
    message = message.replace("Input should be greater than or equal to", "Enter a number of at least")
    message = message.replace("Input should be less than or equal to", "Enter a number no more than")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def answers_from_profile(profile: Mapping[str, Any]) -> Answers:
    """The inverse of parse_answers, used to fill the form from an example profile."""
    answers: Answers = {}
    # Validate first: drug names come back as generic ids, whatever the profile called them.
    profile = parse_profile(dict(profile)).model_dump(exclude_none=True, exclude_defaults=True)
    for spec in form_fields().values():
        value = _get(profile, spec.name)
        if value is None:
            continue
        if spec.kind == "treatments":
            first, second = ROW_PARTS[spec.name]
            for i, row in enumerate(value[: spec.rows]):
                answers[f"{spec.name}.{i}.drugs"] = [drug_label(d) for d in row.get("drugs", [])][:DRUGS_PER_ROW]
                for part in (first, second):
                    if row.get(part) is not None:
                        answers[f"{spec.name}.{i}.{part}"] = _text(row[part])
        elif spec.kind in ("checkboxes", "text"):
            answers[spec.name] = [str(v) for v in value] if spec.kind == "checkboxes" else "\n".join(value)
        elif spec.kind == "yesno":
            answers[spec.name] = "yes" if value else "no"
        else:
            answers[spec.name] = _text(value)
    return answers


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _get(profile: Mapping[str, Any], path: str) -> Any:
    node: Any = profile
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def error_label(key: str) -> str:
    """What the error summary calls a field: its question, or the treatment row and part."""
    fields = form_fields()
    if key in fields:
        return fields[key].label
    match = re.match(r"^(history\.\w+)\.(\d+)\.(\w+)$", key)
    if match and match.group(1) in fields:
        part = {"drugs": "medicines", "outcome": "how it went", "months": "months",
                "setting": "when it was given", "months_since_end": "months until it came back"}
        group = fields[match.group(1)].label
        return f"{group}, treatment {int(match.group(2)) + 1}: {part.get(match.group(3), match.group(3))}"
    return "Your answers"


def dom_id(key: str) -> str:
    return "f-" + key.replace(".", "-").replace("_", "-")


def error_target(key: str) -> str:
    """The id of the input an error summary link moves focus to: the first input of its group."""
    if not key:
        return "form-top"
    spec = form_fields().get(key)
    if spec is not None and spec.kind in ("radio", "yesno", "checkboxes"):
        return dom_id(key) + "-0"
    if spec is not None and spec.kind == "treatments":
        return dom_id(f"{key}.0.drugs") + "-0"
    if key.endswith(".drugs"):
        return dom_id(key) + "-0"
    return dom_id(key)
