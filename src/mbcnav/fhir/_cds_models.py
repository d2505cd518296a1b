"""CDS Hooks 2.0 request and response objects (the spec's JSON, as pydantic models).

Requests are read tolerantly (unknown members are kept, extensions are allowed; the 3.0 ballot's
camelCase fhirAuthorization members are accepted too). Responses are strict: every card carries
the fields the spec requires (summary < 140 characters, indicator, source.label).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

SUMMARY_MAX = 139   # the spec: "<140-character summary"


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    access_token: str = Field(validation_alias=AliasChoices("access_token", "accessToken"))
    token_type: str = Field(default="Bearer", validation_alias=AliasChoices("token_type", "tokenType"))
    expires_in: int | None = Field(default=None, validation_alias=AliasChoices("expires_in", "expiresIn"))
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    hook: str
    hookInstance: str
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class Coding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    system: str
    display: str


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    url: str | None = None
    topic: Coding | None = None


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    uuid: str = Field(default_factory=lambda: str(uuid.uuid4()))
    isRecommended: bool | None = None
    actions: list[Action] = Field(default_factory=list)


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uuid: str = Field(default_factory=lambda: str(uuid.uuid4()))
    summary: str
    indicator: Literal["info", "warning", "critical"]
    detail: str | None = None
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None

    @field_validator("summary")
    @classmethod
    def _short(cls, value: str) -> str:
        return value if len(value) <= SUMMARY_MAX else value[: SUMMARY_MAX - 1].rstrip() + "…"


class CardsResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cards: list[Card]


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str]
    usageRequirements: str


class Discovery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services: list[Service]


class ErrorMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str


def cards_json(cards: list[Card]) -> dict[str, Any]:
    return {"cards": [c.model_dump(exclude_none=True) for c in cards]}
