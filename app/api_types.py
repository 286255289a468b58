"""Field types shared by the API schemas of several domains."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Self, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from app.errors import FieldCode, invalid_value
from app.storage.base import Page

Record = TypeVar("Record")

_NUMBER = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _iso_text_only(value: object) -> object:
    # pydantic would read "0.5" or "1700000000" as seconds since 1970; the API documents ISO-8601 only.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise invalid_value(
            FieldCode.INVALID_DATETIME,
            "must be an ISO-8601 date-time with a UTC offset, e.g. 2026-11-23T09:30:00+00:00",
        )
    return value


# An ISO-8601 date-time with an offset ("Z" or "+01:00"); naive times and epoch numbers are refused.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text_only)]


def _iso_date_text_only(value: object) -> object:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise invalid_value(FieldCode.INVALID_DATETIME, "must be an ISO-8601 date, e.g. 2026-11-23")
    return value


# A calendar date as YYYY-MM-DD; pydantic would otherwise read 0 as 1970-01-01.
IsoDate = Annotated[date, BeforeValidator(_iso_date_text_only)]


class PageOut(BaseModel):
    """The answer of every list. A subclass names its items' type (`items: list[SubscriberOut]`),
    which keeps the field's place: items first. Not generic on purpose: each parametrised
    generic model is built as a class of its own at import, a cold-start cost for nothing."""

    items: list[Any]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last page.")

    @classmethod
    def of(cls, page: Page[Record], item: Callable[[Record], BaseModel]) -> Self:
        return cls(items=[item(record) for record in page.items], next_cursor=page.next_cursor)
