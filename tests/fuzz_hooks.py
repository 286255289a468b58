"""What schemathesis needs to know to generate valid values (loaded through SCHEMATHESIS_HOOKS).

The document names two formats a pattern can't state (app/subscribers/fields.py): these give
their valid values, so positive cases are valid and the positive-data check is fair.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
import schemathesis
from hypothesis import strategies as st

from app.concurrency import IF_MATCH_PATTERN
from app.subscribers.fields import ICCID_FORMAT, PHONE_NUMBER_FORMAT, luhn_valid

_REGIONS = ["GB", "US", "DE", "FR", "IN", "BR", "JP", "ZA"]


def _example_numbers() -> list[str]:
    numbers = []
    for region in _REGIONS:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    # National notation, read in DEFAULT_PHONE_REGION (GB unless configured).
    numbers.append("07911 123456")
    return numbers


def _with_check_digit(digits: str) -> str:
    return next(digits + str(check) for check in range(10) if luhn_valid(digits + str(check)))


schemathesis.openapi.format(PHONE_NUMBER_FORMAT, st.sampled_from(_example_numbers()))
schemathesis.openapi.format(ICCID_FORMAT, st.from_regex(r"\A89[0-9]{16,17}\Z").map(_with_check_digit))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Drops an If-Match the generator itself labelled wrongly, from a case it calls positive.

    schemathesis 4.32.5's coverage phase fills headers from letters and digits only; an optional
    header whose pattern needs other characters (an entity tag needs `"`) gets a value such as `0`,
    which then rides along in the cases built by varying the other parameters, still labelled
    positive. Without the header those cases are what they claim to be (If-Match is optional where
    this happens); a missing required If-Match never gets here, it makes no positive case at all.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not case.headers:
        return
    for name in [name for name in case.headers if name.lower() == "if-match"]:
        if re.fullmatch(IF_MATCH_PATTERN, str(case.headers[name])) is None:
            del case.headers[name]
