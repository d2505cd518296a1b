"""The Doctor Discussion Guide: questions and notes the user picked, in the user's order.

A guide holds only what the user chose: no profile, only the option summaries they ticked.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mbcnav.render.labels import TIER_LABEL

MAX_ITEMS = 100
MAX_TEXT = 1000
ItemKind = Literal["question", "note"]
Tier = Literal["preferred", "alternative", "selected_cases"]

# Bidirectional overrides can make text display differently from what it is (e.g. in an email).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class GuideError(ValueError):
    """An invalid guide or item, with one plain message per problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    @classmethod
    def from_validation(cls, err: ValidationError) -> GuideError:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"])
            message = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        return cls(problems)


def new_item_id() -> str:
    return secrets.token_urlsafe(6)


def clean_text(value: str, *, max_len: int, multiline: bool) -> str:
    """Strip, normalise line ends and tabs; refuse other control characters."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").strip()
    for ch in text:
        if (ch == "\n" and not multiline) or (ch != "\n" and unicodedata.category(ch) == "Cc"):
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
        if ch in _BIDI_CONTROLS:
            raise ValueError(f"text direction character U+{ord(ch):04X} is not allowed")
    if not 1 <= len(text) <= max_len:
        raise ValueError(f"must be 1 to {max_len} characters (got {len(text)})")
    return text


class GuideItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_item_id, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    kind: ItemKind
    text: str
    # The knowledge-base question id it came from, or "own" for the user's own words.
    origin: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,64}$")

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # Line breaks are kept so a note can have several lines; nothing else invisible gets in.
        return clean_text(value, max_len=MAX_TEXT, multiline=True) if isinstance(value, str) else value


class OptionSummary(BaseModel):
    """One treatment option the user chose to include, as plain text."""

    model_config = ConfigDict(extra="forbid")

    title: str
    tier: Tier
    drugs: str = ""

    @field_validator("title", "drugs", mode="before")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return ""
        return clean_text(value, max_len=500, multiline=False) if isinstance(value, str) else value

    @field_validator("title")
    @classmethod
    def _title_required(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @property
    def tier_label(self) -> str:
        return TIER_LABEL[self.tier]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Guide(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[GuideItem] = Field(default_factory=list, max_length=MAX_ITEMS)
    options_summary: list[OptionSummary] | None = Field(default=None, max_length=30)
    knowledge_version: str | None = Field(default=None, pattern=r"^[0-9A-Za-z.+_-]{1,64}$")
    created: datetime = Field(default_factory=_utcnow)

    @field_validator("created")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    @model_validator(mode="after")
    def _unique_ids(self) -> Guide:
        ids = [item.id for item in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError("items: item ids must be unique")
        return self

    # --- reading -------------------------------------------------------------------------
    @property
    def questions(self) -> list[GuideItem]:
        return [i for i in self.items if i.kind == "question"]

    def find(self, item_id: str) -> GuideItem | None:
        return next((i for i in self.items if i.id == item_id), None)

    def find_origin(self, origin: str) -> GuideItem | None:
        """The item added from a suggested question, so the page can show 'remove' instead of 'add'."""
        return next((i for i in self.items if i.origin == origin), None)

    # --- editing (each call leaves a valid guide or raises GuideError) ----------------------
    def add(self, kind: ItemKind, text: str, origin: str | None = None, index: int | None = None) -> GuideItem:
        if len(self.items) >= MAX_ITEMS:
            raise GuideError([f"items: a guide holds at most {MAX_ITEMS} questions and notes"])
        if origin is not None and origin != "own" and self.find_origin(origin) is not None:
            raise GuideError([f"origin: question {origin!r} is already in the guide"])
        try:
            item = GuideItem(kind=kind, text=text, origin=origin)
        except ValidationError as err:
            raise GuideError.from_validation(err) from None
        while self.find(item.id) is not None:  # 48-bit ids: a clash is rare, but cheap to rule out
            item.id = new_item_id()
        self.items.insert(len(self.items) if index is None else max(0, index), item)
        return item

    def add_question(self, text: str, origin: str | None = "own") -> GuideItem:
        return self.add("question", text, origin)

    def add_note(self, text: str) -> GuideItem:
        return self.add("note", text, "own")

    def edit(self, item_id: str, text: str) -> GuideItem:
        item = self._require(item_id)
        try:
            item.text = GuideItem(kind=item.kind, text=text).text
        except ValidationError as err:
            raise GuideError.from_validation(err) from None
        return item

    def remove(self, item_id: str) -> bool:
        item = self.find(item_id)
        if item is None:
            return False
        self.items.remove(item)
        return True

    def move(self, item_id: str, index: int) -> None:
        """Move an item to position `index` (clamped to the list), keeping the others' order."""
        item = self._require(item_id)
        self.items.remove(item)
        self.items.insert(min(max(index, 0), len(self.items)), item)

    def move_up(self, item_id: str) -> bool:
        position = self.items.index(self._require(item_id))
        if position == 0:
            return False
        self.move(item_id, position - 1)
        return True

    def move_down(self, item_id: str) -> bool:
        position = self.items.index(self._require(item_id))
        if position == len(self.items) - 1:
            return False
        self.move(item_id, position + 1)
        return True

    def _require(self, item_id: str) -> GuideItem:
        item = self.find(item_id)
        if item is None:
            raise GuideError([f"items: no item with id {item_id!r}"])
        return item


def parse_guide(data: Mapping[str, Any] | str | bytes) -> Guide:
    """Validate a guide from the browser session (dict) or from storage (JSON text)."""
    try:
        if isinstance(data, str | bytes):
            return Guide.model_validate_json(data)
        return Guide.model_validate(dict(data))
    except ValidationError as err:
        raise GuideError.from_validation(err) from None
