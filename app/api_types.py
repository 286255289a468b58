"""Field types shared by the API schemas of several domains."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator

from app.errors import FieldCode, invalid_value

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
