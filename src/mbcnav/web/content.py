"""The web app's own words: the form's questions and the category headings (YAML in `content/`).

Clinical facts stay in the knowledge base; these files hold interface text only (labels, hints,
where to find a result in a report, what each kind of treatment is in general).
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Literal
from urllib.parse import quote, urlencode

import yaml
from pydantic import BaseModel, ConfigDict, Field

FieldKind = Literal["radio", "yesno", "number", "checkboxes", "text", "treatments"]


class _Text(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormField(_Text):
    name: str                              # contract profile path, e.g. tumor.her2.ihc
    kind: FieldKind
    label: str
    hint: str | None = None
    where: str | None = None               # where to find it in a report
    urgent: str | None = None              # shown beside the question, in the warning style
    required: bool = False
    choices: list[tuple[str, str]] = Field(default_factory=list)
    unknown_label: str = "I don't know"
    unknown_value: str = "unknown"
    none_hint: str | None = None
    suffix: str | None = None
    step: str = "1"
    rows: int = 0

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-").replace("_", "-")   # same rule as form.dom_id


class FormStep(_Text):
    id: str
    title: str
    intro: str
    where: str | None = None
    fields: list[FormField]


class Category(_Text):
    slug: str
    title: str
    engine: list[str]                      # the engine's category values shown under this heading
    summary: str
    what: str
    how: str
    feel: str


class Registry(_Text):
    name: str
    search: str
    condition: str
    recruiting: str
    terms: dict[str, str]
    text: str


class Helpline(_Text):
    name: str
    phone: str
    phone_words: str
    url: str
    text: str


class TrialFinder(_Text):
    """Where to look for a trial (trials.yaml): the registry searched for a subtype, and a help line."""

    reviewed: date
    registry: Registry
    helpline: Helpline
    bring: str

    def search_url(self, subtype: str | None = None) -> str:
        """Recruiting ClinicalTrials.gov studies of metastatic breast cancer, narrowed to the subtype if known."""
        query = {"cond": self.registry.condition}
        term = self.registry.terms.get(subtype or "")
        if term:
            query["term"] = term
        query["aggFilters"] = self.registry.recruiting
        return f"{self.registry.search}?{urlencode(query, quote_via=quote, safe=':')}"


def _load(name: str) -> object:
    return yaml.safe_load((resources.files("mbcnav.web") / "content" / name).read_text(encoding="utf-8"))


@cache
def form_steps() -> tuple[FormStep, ...]:
    data = _load("form.yaml")
    assert isinstance(data, dict)
    return tuple(FormStep.model_validate(step) for step in data["steps"])


@cache
def form_fields() -> dict[str, FormField]:
    return {f.name: f for step in form_steps() for f in step.fields}


@cache
def categories() -> tuple[Category, ...]:
    data = _load("categories.yaml")
    assert isinstance(data, list)
    return tuple(Category.model_validate(item) for item in data)


@cache
def trial_finder() -> TrialFinder:
    return TrialFinder.model_validate(_load("trials.yaml"))


@cache
def category_of(engine_category: str) -> Category:
    """The heading an engine category is shown under."""
    for category in categories():
        if engine_category in category.engine:
            return category
    raise KeyError(engine_category)
