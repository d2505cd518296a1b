"""What an import found, what it missed and what it could not read, per resource type.

The report is the honest half of an import: a clinician must be able to see which record each
profile value came from, and which records were skipped and why, before trusting the options.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Report sections. Medication covers MedicationRequest, MedicationAdministration and
#: MedicationStatement (each finding names its own resource); Other is everything else.
SECTIONS = ("Bundle", "Patient", "Observation", "Condition", "Medication", "Other")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Found(_Model):
    """One value read into the profile."""

    field: str = Field(description="Profile field it filled in, e.g. tumor.er")
    value: Any = Field(description="The value used (contract form)")
    resource: str = Field(description="Resource it came from, e.g. Observation/er-1")
    detail: str = Field(description="How it was read: code, display and result")
    date: str | None = Field(default=None, description="Effective or onset date, when recorded")


class Missing(_Model):
    """A profile field that no resource in the bundle filled in."""

    field: str
    reason: str


class Unreadable(_Model):
    """A resource (or part of one) that could not be used, with the reason."""

    resource: str
    reason: str


class Section(_Model):
    found: list[Found] = Field(default_factory=list)
    missing: list[Missing] = Field(default_factory=list)
    unreadable: list[Unreadable] = Field(default_factory=list)
    ignored: list[Unreadable] = Field(
        default_factory=list, description="Readable resources mbcnav does not use, and why"
    )


class ImportReport(_Model):
    """The profile built from a FHIR bundle, and an account of every resource."""

    profile: dict[str, Any] = Field(description="Profile in contract v1 form")
    sections: dict[str, Section] = Field(default_factory=lambda: {name: Section() for name in SECTIONS})
    notes: list[str] = Field(default_factory=list, description="Choices made, e.g. which of two results was used")
    profile_problems: list[str] = Field(
        default_factory=list, description="Why the profile is not valid (e.g. no sex recorded); empty when valid"
    )

    @property
    def usable(self) -> bool:
        return not self.profile_problems

    def lines(self) -> list[str]:
        """Plain-text summary, one line per item, for the CLI and the explanation page."""
        out: list[str] = []
        for name, section in self.sections.items():
            for found in section.found:
                when = f" ({found.date})" if found.date else ""
                out.append(f"found      {name:<11} {found.field} = {found.value!r} from {found.resource}{when}")
            for missing in section.missing:
                out.append(f"missing    {name:<11} {missing.field}: {missing.reason}")
            for bad in section.unreadable:
                out.append(f"unreadable {name:<11} {bad.resource}: {bad.reason}")
            for skipped in section.ignored:
                out.append(f"ignored    {name:<11} {skipped.resource}: {skipped.reason}")
        out += [f"note       {note}" for note in self.notes]
        out += [f"problem    {problem}" for problem in self.profile_problems]
        return out
