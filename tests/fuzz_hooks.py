"""What schemathesis needs to know to generate valid values (loaded through SCHEMATHESIS_HOOKS).

The document names two formats a pattern can't state (app/subscribers/fields.py): these give
their valid values, so positive cases are valid and the positive-data check is fair.
"""

from __future__ import annotations

import phonenumbers
import schemathesis
from hypothesis import strategies as st

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
