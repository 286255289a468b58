"""Records <-> MongoDB documents: the one mapping every MongoDB repository uses.

A record is stored as its JSON form, except its datetime fields, which stay datetimes so that
MongoDB keeps them as BSON dates (range queries and TTL indexes compare dates, not text). Other
types BSON has no place for (a `date`) are their JSON text. Which fields are datetimes is read
from the model, so a new field needs no entry here. The record's identity field is the `_id`.
"""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping
from datetime import datetime
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel

from app.storage.records import record_fields
from app.timeutil import as_utc

R = TypeVar("R", bound=BaseModel)


@cache
def datetime_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The model's fields typed `datetime` or `datetime | None`."""
    return tuple(name for name, field in model.model_fields.items() if _is_datetime(field.annotation))


def _is_datetime(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_datetime(member) for member in get_args(annotation))
    return annotation is datetime


def dump(record: BaseModel, *, exclude: Collection[str] = ()) -> dict[str, Any]:
    """The record's fields as stored (an `$set` of all of them, or a document without its `_id`)."""
    fields = record.model_dump(mode="json", exclude=set(exclude) or None)
    for name in datetime_fields(type(record)):
        if name in fields:
            fields[name] = getattr(record, name)
    return fields


def document(record: BaseModel, id_field: str, *, exclude: Collection[str] = ()) -> dict[str, Any]:
    fields = dump(record, exclude=exclude)
    fields["_id"] = fields.pop(id_field)
    return fields


def load(model: type[R], stored: Mapping[str, Any], id_field: str | None = None) -> R:
    """The record in a document; `id_field` is the field its `_id` holds (None: the `_id` is derived)."""
    fields = record_fields(model, stored)
    if id_field:
        fields[id_field] = stored["_id"]
    for name in datetime_fields(model):
        if fields.get(name) is not None:
            fields[name] = as_utc(fields[name])  # MongoDB returns naive UTC unless the client is tz-aware
    return model.model_validate(fields)
