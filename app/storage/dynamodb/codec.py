"""Records <-> DynamoDB items: the one mapping every DynamoDB repository uses.

A record is stored as its JSON form (times as ISO-8601 text, enums as their values) beside the
item's keys; `table.serialize` then drops the fields that are None. Reading takes the record's
fields back from the item and leaves its keys, index keys and bookkeeping attributes behind.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from app.storage.records import record_fields

R = TypeVar("R", bound=BaseModel)


def dump(record: BaseModel, *, exclude: Collection[str] = ()) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude=set(exclude) or None)


def load(model: type[R], item: Mapping[str, Any]) -> R:
    return model.model_validate(record_fields(model, item))
