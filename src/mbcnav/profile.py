"""The Profile: contract v1 input, validated with messages that name the field.

Only the contract's fields are accepted. Missing information is never an error; impossible
combinations are. Drug names (generic, brand or common abbreviation) are normalised to the
contract's generic ids; an unknown name is rejected with the closest known names.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mbcnav.vocabulary import normalise_drug

Site = Literal[
    "bone", "liver", "lung", "pleura", "brain", "leptomeninges", "lymph_nodes", "skin",
    "soft_tissue", "chest_wall", "breast", "peritoneum", "other",
]
Condition = Literal[
    "diabetes", "interstitial_lung_disease", "heart_failure", "long_qt", "liver_impairment",
    "neuropathy", "pregnancy",
]
SITES: tuple[str, ...] = Site.__args__  # type: ignore[attr-defined]
CONDITIONS: tuple[str, ...] = Condition.__args__  # type: ignore[attr-defined]

# Numbers are strict: `false` or "5" in a numeric field is a mistake, not a number (the HTTP API
# and the CLI must agree).
Months = Annotated[float, Field(ge=0, le=600, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Her2(_Strict):
    ihc: Literal["0", "ultralow", "1+", "2+", "3+", "unknown"] = "unknown"
    ish: Literal["amplified", "not_amplified", "not_done"] = "not_done"

    @field_validator("ihc", mode="before")
    @classmethod
    def _ihc_as_text(cls, value: Any) -> Any:
        # A bare 0 from JSON or YAML means IHC 0; accept it rather than fail on type.
        return "0" if value == 0 and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> Her2:
        if self.ihc == "3+" and self.ish == "not_amplified":
            raise ValueError(
                "tumor.her2: IHC 3+ with ISH not amplified is not a valid combination; IHC 3+ is "
                "HER2-positive without ISH. Check the pathology report and enter ish: not_done, or "
                "the IHC score that was reported"
            )
        return self


class Tumor(_Strict):
    er: Literal["positive", "low", "negative", "unknown"] = "unknown"
    pr: Literal["positive", "negative", "unknown"] = "unknown"
    her2: Her2 = Field(default_factory=Her2)
    pik3ca: Literal["mutated", "wild_type", "unknown"] = "unknown"
    akt1: Literal["mutated", "wild_type", "unknown"] = "unknown"
    pten: Literal["altered", "wild_type", "unknown"] = "unknown"
    esr1: Literal["mutated", "wild_type", "unknown"] = "unknown"
    germline_brca: Literal["brca1", "brca2", "negative", "unknown"] = "unknown"
    germline_palb2: Literal["mutated", "negative", "unknown"] = "unknown"
    pdl1_cps: Annotated[float, Field(ge=0, le=100, strict=True)] | None = None
    msi: Literal["high", "stable", "unknown"] = "unknown"
    tmb: Annotated[float, Field(ge=0, le=1000, strict=True)] | None = None
    ntrk_fusion: Literal["present", "absent", "unknown"] = "unknown"


class BrainMetastases(_Strict):
    active: bool | None = None
    symptomatic: bool | None = None
    count: Annotated[int, Field(ge=0, le=1000, strict=True)] | None = None


class Disease(_Strict):
    presentation: Literal["de_novo", "recurrent"] | None = None
    sites: list[Site] | None = None
    visceral_crisis: bool | None = None
    symptomatic: bool | None = None
    brain_metastases: BrainMetastases | None = None
    spinal_cord_compression: bool | None = None
    oligometastatic: bool | None = None

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))


class Health(_Strict):
    ecog: Annotated[int, Field(ge=0, le=4, strict=True)] | None = None
    lvef_percent: Annotated[float, Field(ge=5, le=90, strict=True)] | None = None
    conditions: list[Condition] = Field(default_factory=list)


def _drug_list(value: Any, info: ValidationInfo) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("must be a list of drug names")
    out: list[str] = []
    for name in value:
        if not isinstance(name, str):
            raise ValueError(f"drug names must be text, got {name!r}")
        for generic in normalise_drug(name):
            if generic not in out:
                out.append(generic)
    return out


class EarlyTreatment(_Strict):
    drugs: list[str]
    setting: Literal["adjuvant", "neoadjuvant"] = "adjuvant"
    months_since_end: Months | None = None

    _drugs = field_validator("drugs", mode="before")(_drug_list)


class MetastaticTreatment(_Strict):
    drugs: list[str]
    outcome: Literal["progressed", "intolerant", "ongoing", "stopped"] | None = None
    months: Months | None = None

    _drugs = field_validator("drugs", mode="before")(_drug_list)


class History(_Strict):
    early: list[EarlyTreatment] = Field(default_factory=list)
    metastatic: list[MetastaticTreatment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ongoing_last(self) -> History:
        ongoing = [i for i, t in enumerate(self.metastatic) if t.outcome == "ongoing"]
        if ongoing and ongoing != [len(self.metastatic) - 1]:
            raise ValueError(
                "history.metastatic: only the last (newest) treatment can be 'ongoing'; list "
                "treatments oldest first and mark earlier ones progressed, intolerant or stopped"
            )
        return self


class Profile(_Strict):
    """A person's cancer as the contract describes it (all fields optional but sex)."""

    sex: Literal["female", "male"]
    age: Annotated[int, Field(ge=18, le=120, strict=True)] | None = None
    menopausal_status: Literal["pre", "peri", "post", "unknown"] | None = None
    ovarian_function_suppressed: bool | None = None
    tumor: Tumor = Field(default_factory=Tumor)
    disease: Disease = Field(default_factory=Disease)
    health: Health = Field(default_factory=Health)
    history: History = Field(default_factory=History)
    current_medications: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.sex == "male":
            if self.menopausal_status not in (None, "unknown"):
                raise ValueError(
                    "menopausal_status: applies to women only; leave it out for a man "
                    "(a man on a GnRH agonist can set ovarian_function_suppressed: true instead)"
                )
            if "pregnancy" in self.health.conditions:
                raise ValueError("health.conditions: 'pregnancy' cannot be recorded for a man")
        return self


class ProfileError(ValueError):
    """An invalid profile, with one plain message per problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif not item.startswith(("function-", "literal[", "constrained-")) and item not in (
            "list[...]", "float", "int", "bool", "str", "none", "is-instance[Site]",
        ):
            parts.append(item)
    return ".".join(parts)


def _describe(error: Any) -> str:
    where = _loc(tuple(error["loc"]))
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        return f"{where}: unknown field; see the contract (CONTRACT.md) for the allowed fields"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{where}: {error.get('input')!r} is not allowed; allowed values: {expected}"
    if kind == "missing":
        return f"{where}: required"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        own_field = re.match(r"^[a-z_][a-z_.\[\]0-9]*: ", message)
        if own_field and message.startswith(where):
            return message
    return f"{where}: {message}" if where else message


def parse_profile(data: Any) -> Profile:
    """Validate a profile mapping; raise ProfileError with field-named messages."""
    if not isinstance(data, dict):
        raise ProfileError(["profile: must be a JSON object with at least 'sex'"])
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise ProfileError([_describe(e) for e in err.errors()]) from None


def profile_json(text: str | bytes) -> Any:
    """JSON text -> data, refusing an object that gives one key twice (ProfileError naming it).

    json.loads would keep the last value and other readers the first, so a record such as
    ``{"er": "positive", ..., "er": "negative"}`` could mean either: it is rejected instead of
    guessed. Text that is not JSON raises ValueError (json.JSONDecodeError), as json.loads does.
    """
    repeated: dict[int, tuple[dict[str, Any], list[str]]] = {}   # kept alive, so ids stay unique

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            twice: list[str] = []
            for key, _ in items:
                if key in seen and key not in twice:
                    twice.append(key)
                seen.add(key)
            repeated[id(out)] = (out, twice)
        return out

    data = json.loads(text, object_pairs_hook=pairs)
    if repeated:
        raise ProfileError([f"{where}: given more than once; give each field only once"
                            for where in _repeated_paths(data, "", repeated)])
    return data


def _repeated_paths(value: Any, path: str, repeated: dict[int, tuple[dict[str, Any], list[str]]]) -> list[str]:
    """Where the repeated keys are, as field paths (`tumor.er`, `history.metastatic[1].outcome`)."""
    found: list[str] = []
    if isinstance(value, dict):
        found += [f"{path}.{key}" if path else key for key in repeated.get(id(value), ({}, []))[1]]
        for key, item in value.items():
            found += _repeated_paths(item, f"{path}.{key}" if path else key, repeated)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _repeated_paths(item, f"{path}[{i}]", repeated)
    return found
