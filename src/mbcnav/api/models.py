"""Response models: the OpenAPI document's precise description of every answer.

The routes return the engine's dicts unchanged (the contract must not drift through a second
serialiser); these models only describe them. Every model forbids unknown fields, so the
schemathesis run in tests/api fails the moment the engine emits a field described nowhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mbcnav.fhir.report import ImportReport
from mbcnav.knowledge.schema import Category, EvidenceLevel, SourceKind, Tier


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Out):
    source: str = Field(description="Full citation")
    source_id: str = Field(description="Id of the source (GET /api/v1/sources)")
    level: EvidenceLevel
    summary: str
    url: str | None = None


class Option(_Out):
    id: str = Field(description="Stable id of the knowledge-base rule")
    title: str
    plain_title: str = Field(description="The title in plain words (reading grade 8 or lower)")
    category: Category
    tier: Tier
    drugs: list[list[str]] = Field(description="One list per component; any one drug of each list")
    why: list[str]
    cautions: list[str]
    evidence: list[Evidence]
    urgent: bool | None = Field(default=None, description="Present and true for emergencies (shown first)")


class NotRecommended(_Out):
    id: str
    title: str
    plain_title: str
    drugs: list[list[str]]
    why: list[str]


class TestToConsider(_Out):
    id: str
    test: str
    why: str
    could_open: list[str] | None = Field(default=None, description="Plain titles of options the result could open")


class PossibleOption(_Out):
    id: str
    title: str
    plain_title: str
    tier: Tier


class Outcome(_Out):
    label: str = Field(description="The result, in plain words (\"If an ESR1 change is found\")")
    options: list[PossibleOption] = Field(min_length=1, description="Options this result would add")


class TestOutcomes(_Out):
    id: str
    test: str
    outcomes: list[Outcome] = Field(min_length=1)


class WhatIf(_Out):
    """For each suggested test with spelled-out results, the options each result would add.

    Possibilities, not options: none of them is offered until the result is known."""

    knowledge_version: str
    tests: list[TestOutcomes]


class Interaction(_Out):
    id: str
    drugs: list[str] = Field(min_length=2, max_length=2, description="[cancer drug, other medicine]")
    severity: Literal["major", "moderate", "minor"]
    advice: str
    professional: str
    sources: list[str]


class Recommendation(_Out):
    """Contract v1 Recommendation, with the optional extension fields the engine emits."""

    contract: Literal["1"]
    knowledge_version: str
    subtype: Literal["hr_positive_her2_negative", "hr_positive_her2_positive", "hr_negative_her2_positive",
                     "triple_negative", "unknown"]
    her2_category: Literal["positive", "low", "ultralow", "zero", "unknown"]
    decision_point: str
    options: list[Option]
    local_and_supportive: list[Option]
    not_recommended: list[NotRecommended]
    tests_to_consider: list[TestToConsider]
    interactions: list[Interaction]
    questions_for_doctor: list[str]
    warnings: list[str]
    disclaimer: str


class Clause(_Out):
    id: str
    kind: Literal["requires", "excludes"]
    when: str = Field(description="SQL condition over the fact columns")
    value: bool | None = Field(description="true, false, or null for unknown")
    unknown: list[str] | None = Field(default=None, description="Fact columns that were unknown")


class TraceRow(_Out):
    rule: str
    kind: Literal["option", "local_and_supportive", "not_recommended"]
    applies_when: str
    applies: bool | None
    status: Literal["offered", "excluded", "not_met", "unknown", "not_applicable", "blocked"]
    clauses: list[Clause]
    blocked_by: list[str] | None = None


class Explanation(_Out):
    facts: dict[str, str | float | bool | None] = Field(description="Derived fact columns; null = unknown")
    rules: list[TraceRow] = Field(description="Every rule, the facts it saw and its verdict")
    recommendation: Recommendation


class DrugSummary(_Out):
    id: str
    name: str
    brands: list[str]
    classes: list[str]
    category: Category
    status: Literal["approved", "off_label", "historical", "investigational", "procedure"]
    route: Literal["oral", "iv", "sc", "im", "sc_implant", "surgery"]


class SourceRef(_Out):
    id: str
    citation: str
    url: str | None = None


class Drug(DrugSummary):
    aliases: list[str]
    counts_as: list[str]
    schedule: str
    plain_what: str
    plain_how: str
    side_effects_plain: list[str]
    side_effects_pro: list[str]
    monitoring: list[str]
    monitoring_plain: list[str]
    pregnancy: Literal["contraindicated", "avoid", "caution_specialist"]
    label_note: str | None = None
    boxed_warning: list[str]
    interactions_note: str | None = None
    sources: list[SourceRef]
    reviewed: dt.date


class Source(_Out):
    id: str
    kind: SourceKind
    citation: str
    url: str | None = None
    published: str | None = None
    reviewed: dt.date


class KnowledgeInfo(_Out):
    version: str = Field(description="Knowledge-base version that answers (contract knowledge_version)")
    contract: Literal["1"]
    last_reviewed: dt.date = Field(description="Most recent review date of any item")
    oldest_review: dt.date = Field(description="Oldest review date of any item")
    counts: dict[str, int]


class InteractionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drugs: list[str] = Field(default_factory=list, max_length=50,
                             description="Cancer drugs (generic or brand names), e.g. ['tamoxifen']")
    medications: list[str] = Field(default_factory=list, max_length=100,
                                   description="Other medicines, free text, e.g. ['paroxetine', 'Coumadin']")


class InteractionResult(_Out):
    interactions: list[Interaction]
    unmatched_medications: list[str] = Field(description="Medicines not recognised, so not checked")


class FhirRecommendation(_Out):
    import_report: ImportReport = Field(description="What was found, missing and unreadable")
    recommendation: Recommendation


class ProblemType(_Out):
    type: str
    status: int
    title: str
    description: str
