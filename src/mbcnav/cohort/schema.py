"""The cohort input schema: contract Profiles as nested columns, plus two fields outside the Profile.

The field tree is read from the pydantic models in ``mbcnav.profile`` (allowed values, ranges,
defaults, required fields), so the columnar validator can never drift from the one-patient
validator on what a field accepts. Two extra, optional fields sit beside the Profile:

- ``patient_id``: the identifier reported back (default: ``row-<n>``);
- ``given_drugs``: the systemic treatment actually given for the current decision point, as drug
  names (brand names allowed), used for guideline concordance.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mbcnav.profile import Profile

Kind = Literal["enum", "int", "float", "bool", "text", "list", "struct"]

# Fields whose items are drug names, normalised to the contract's generic ids (profile._drug_list).
DRUG_LISTS = frozenset({("history", "early", "*", "drugs"), ("history", "metastatic", "*", "drugs"), ("given_drugs",)})
ROW = "_row"          # 1-based position of the record in its file, carried through for error reports


@dataclass(frozen=True)
class Field:
    """One node of the Profile tree, with what the contract allows for it."""

    name: str
    path: tuple[str, ...]              # ("tumor", "her2", "ihc"); list items add "*"
    kind: Kind
    allowed: tuple[str, ...] = ()      # enum values
    ge: float | None = None
    le: float | None = None
    default: Any = None                # value a missing field takes (the model's default)
    required: bool = False
    factory: bool = False              # a struct the model always builds (tumor, history ...)
    item: Field | None = None          # list element
    fields: tuple[Field, ...] = ()     # struct members


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip Optional and Annotated; return the bare type and the constraint objects."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is typing.Annotated:
            bare, *extras = typing.get_args(annotation)
            annotation = bare
            for extra in extras:
                metadata.extend(getattr(extra, "metadata", [extra]))
        else:
            return annotation, metadata


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    ge = next((float(m.ge) for m in metadata if hasattr(m, "ge")), None)
    le = next((float(m.le) for m in metadata if hasattr(m, "le")), None)
    return ge, le


def _node(
    name: str, path: tuple[str, ...], annotation: Any, default: Any, required: bool, factory: bool = False
) -> Field:
    bare, metadata = _unwrap(annotation)
    ge, le = _bounds(metadata)
    origin = typing.get_origin(bare)
    if origin is Literal:
        return Field(name, path, "enum", tuple(typing.get_args(bare)), default=default, required=required)
    if origin is list:
        (inner,) = typing.get_args(bare)
        item = _node(name, (*path, "*"), inner, None, False)
        return Field(name, path, "list", item=item, default=default, required=required)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return Field(name, path, "struct", fields=_members(bare, path), default=default, required=required,
                     factory=factory)
    kinds: dict[Any, Kind] = {bool: "bool", int: "int", float: "float", str: "text"}
    return Field(name, path, kinds[bare], ge=ge, le=le, default=default, required=required)


def _members(model: type[BaseModel], path: tuple[str, ...]) -> tuple[Field, ...]:
    out: list[Field] = []
    for name, info in model.model_fields.items():
        if info.default_factory is list:
            default: Any = []
        elif info.default is PydanticUndefined:
            default = None
        else:
            default = info.default
        factory = info.default_factory is not None and info.default_factory is not list
        out.append(_node(name, (*path, name), info.annotation, default, info.is_required(), factory))
    return tuple(out)


@cache
def instance(dtype: pl.DataType | pl.datatypes.DataTypeClass) -> pl.DataType:
    """Polars reports some nested types as classes (pl.String) rather than instances."""
    return dtype() if isinstance(dtype, type) else dtype


def profile_tree() -> Field:
    """The whole input record: Profile fields plus patient_id and given_drugs."""
    extras = (
        Field("patient_id", ("patient_id",), "text"),
        Field("given_drugs", ("given_drugs",), "list", item=Field("given_drugs", ("given_drugs", "*"), "text")),
    )
    return Field("", (), "struct", fields=(*_members(Profile, ()), *extras))


def dtype(field: Field, validated: bool = False) -> pl.DataType:
    """The Polars type a field has after reading (enums are text), or once `validated` (enums are Enum)."""
    if field.kind == "enum" and validated:
        return pl.Enum(list(field.allowed))
    if field.kind == "struct":
        return pl.Struct({f.name: dtype(f, validated) for f in field.fields})
    if field.kind == "list":
        assert field.item is not None
        return pl.List(dtype(field.item, validated))
    simple: dict[str, pl.DataType] = {
        "enum": pl.String(), "text": pl.String(), "int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean(),
    }
    return simple[field.kind]


def input_schema() -> pl.Schema:
    """Top-level columns of a cohort file (any may be missing; missing means not given)."""
    return pl.Schema({f.name: dtype(f) for f in profile_tree().fields})


def as_enum(value: pl.Expr, dtype: pl.DataType, target: pl.Enum) -> pl.Expr:
    """`value` (of type `dtype`) as `target`'s value of the same text, NULL where it has none.

    Dictionary-encoded values (Parquet gives Categoricals) are looked up by their code in a table
    made from their categories: a gather, where a cast costs about six times the CPU (9 against
    1.5 ms per 500,000 values). For a Categorical the table is made when this expression is
    built, for one batch: its categories then hold every code the batch uses (they only grow).
    Other types are cast.
    """
    if isinstance(dtype, pl.Categorical | pl.Enum):
        categories = dtype.categories.to_series() if isinstance(dtype, pl.Categorical) else pl.Series(
            dtype.categories)
        return pl.lit(categories.cast(pl.String).cast(target, strict=False)).gather(value.to_physical())
    return value.cast(target, strict=False)
