"""Schemas of the knowledge files. Every clinical statement carries sources and a review date.

Each model forbids unknown keys, so a typo in a knowledge file fails loudly at load time
instead of being ignored (the MatchMiner warning in the style anchors).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Category = Literal[
    "hormone_therapy", "targeted_therapy", "chemotherapy", "immunotherapy", "radiation", "surgery",
    "clinical_trials", "palliative_care", "supportive_care",
]
Tier = Literal["preferred", "alternative", "selected_cases"]
EvidenceLevel = Literal[
    "phase3_rct",          # randomised phase 3 trial(s) supporting the use
    "randomised_phase2",   # randomised phase 2 trial(s)
    "single_arm",          # single-arm or basket trial, usually behind an accelerated approval
    "guideline",           # guideline recommendation or consensus without a dedicated trial here
    "label",               # regulatory label (approval) is the main anchor
    "expert_opinion",
    "historical",          # no longer current; shown as history
]
SourceKind = Literal["label", "guideline", "trial", "regulatory", "review", "consensus", "seed", "other"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Data):
    id: str
    kind: SourceKind
    citation: str                    # full reference as a clinician would cite it
    url: str | None = None
    published: str | None = None     # year or date as text
    reviewed: dt.date                # when a team member last checked it against this entry


class Reviewed(_Data):
    sources: list[str] = Field(min_length=1)
    reviewed: dt.date


class Drug(Reviewed):
    id: str
    name: str                        # display name, e.g. "Trastuzumab deruxtecan"
    brands: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)    # abbreviations people type: T-DXd, TDM-1
    classes: list[str] = Field(min_length=1)
    counts_as: list[str] = Field(default_factory=list)  # fixed-dose combinations, e.g. Phesgo
    category: Category
    status: Literal["approved", "off_label", "historical", "investigational", "procedure"]
    route: Literal["oral", "iv", "sc", "im", "sc_implant", "surgery"]
    schedule: str                    # professional: dose and schedule
    plain_what: str                  # grade <= 8: what it is and how it works
    plain_how: str                   # grade <= 8: how it is given and how often
    side_effects_plain: list[str] = Field(min_length=1)
    side_effects_pro: list[str] = Field(min_length=1)
    monitoring: list[str] = Field(default_factory=list)
    monitoring_plain: list[str] = Field(default_factory=list)
    pregnancy: Literal["contraindicated", "avoid", "caution_specialist"]
    label_note: str | None = None    # e.g. "Not FDA-labelled for breast cancer; guideline-supported"
    boxed_warning: list[str] = Field(default_factory=list)
    interactions_note: str | None = None


class Clause(_Data):
    id: str
    when: str                        # SQL boolean over fact columns
    because: str | None = None       # plain words, shown when the clause holds (requires)
    because_not: str | None = None   # plain words, shown under not_recommended when it fails


class Caution(_Data):
    when: str = "TRUE"
    text: str


class Evidence(_Data):
    source: str
    level: EvidenceLevel
    summary: str                     # professional: trial and its result


class Example(_Data):
    name: str
    profile: dict[str, Any]
    expect_tier: Tier | None = None
    expect_why: list[str] = Field(default_factory=list)   # substrings that must appear in `why`


class Examples(_Data):
    match: list[Example] = Field(min_length=1)
    no_match: list[Example] = Field(min_length=1)


class Rule(Reviewed):
    """An option, a local/supportive measure or an expected-but-not-recommended treatment."""

    id: str
    kind: Literal["option", "local_and_supportive", "not_recommended"]
    title: str                       # professional title
    plain_title: str                 # grade <= 8
    category: Category
    tier: Tier | None = None         # options and local_and_supportive
    rank: int = 50                   # lower comes first within a tier
    urgent: bool = False
    drugs: list[list[str]] = Field(default_factory=list)
    applies_when: str                # context: when false or unknown the rule is silent
    requires: list[Clause] = Field(default_factory=list)
    excludes: list[Clause] = Field(default_factory=list)
    cautions: list[Caution] = Field(default_factory=list)
    evidence: list[Evidence] = Field(min_length=1)
    since: str
    examples: Examples

    @field_validator("drugs")
    @classmethod
    def _no_empty_component(cls, value: list[list[str]]) -> list[list[str]]:
        if any(not component for component in value):
            raise ValueError("a drugs component cannot be empty")
        return value


class Adjunct(Reviewed):
    """Adds a component (e.g. ovarian suppression) to every option that contains given classes."""

    id: str
    when: str
    for_classes: list[str]
    add: list[str]
    because: str
    caution: str | None = None


class SafetyBlock(Reviewed):
    """A safety net over all options: drugs of these classes are never offered when `when` holds."""

    id: str
    when: str
    block_classes: list[str] = Field(default_factory=list)
    block_drugs: list[str] = Field(default_factory=list)
    block_pregnancy: list[Literal["contraindicated", "avoid"]] = Field(default_factory=list)
    except_drugs: list[str] = Field(default_factory=list)
    because: str


class TestOutcome(_Data):
    """One possible result of a test, as profile fields ("tumor.esr1": mutated), and its plain label."""

    label: str                                   # plain words: "If an ESR1 change is found"
    set: dict[str, str | float | bool] = Field(min_length=1)


class TestSuggestion(Reviewed):
    id: str
    test: str                        # display name, e.g. "ESR1 mutation (blood ctDNA)"
    why: str                         # plain words
    when: str | None = None          # suggest when this holds (and the engine finds it useful)
    resolves: list[str] = Field(default_factory=list)  # fact columns this test can fill in
    professional: str | None = None
    # Results worth spelling out: the what-if step (whatif.py) shows the options each would add.
    outcomes: list[TestOutcome] = Field(default_factory=list)


class Interaction(Reviewed):
    id: str
    drugs: list[str] = Field(min_length=1)          # offered drug ids or classes (prefix class:)
    with_: list[str] = Field(alias="with", min_length=1)   # medication ids or groups (prefix group:)
    severity: Literal["major", "moderate", "minor"]
    advice: str                      # plain words
    professional: str

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Medication(_Data):
    """A non-cancer medicine people may list under current_medications."""

    id: str
    names: list[str] = Field(default_factory=list)  # brands and other names, any case


class MedicationGroup(Reviewed):
    """A named set of medicines sharing a property, e.g. strong CYP3A inhibitors."""

    id: str
    title: str
    members: list[str] = Field(min_length=1)        # medication or drug ids


class Question(Reviewed):
    id: str
    text: str                        # plain words, grade <= 8
    category: Category | Literal["general", "tests", "side_effects"]
    when: str | None = None          # personal question: asked when this holds


class Warning(Reviewed):
    id: str
    when: str
    text: str                        # plain words
    urgent: bool = False
