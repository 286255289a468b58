"""The shared input schema as the bulk importer uses it: one row at a time, with a region."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.errors import FieldCode, FieldError, as_field_error
from app.storage.records import SubscriberStatus
from app.subscribers.schemas import SubscriberIn, SubscriberPatch, parse_subscriber
from tests.subscribers.support import body, iccid


def test_parse_subscriber_normalises_a_row() -> None:
    row = body(1, uid=..., status=..., msisdn="07911 100001", email="A@B.example.com", attributes={"n": 2.0})
    parsed = parse_subscriber(row, phone_region="GB")
    assert parsed.uid is None
    assert parsed.status is SubscriberStatus.ACTIVE
    assert parsed.msisdn == "+447911100001"
    assert parsed.email == "a@b.example.com"
    assert parsed.iccid == iccid(1)
    assert parsed.attributes == {"n": 2}


def test_the_region_decides_how_national_numbers_are_read() -> None:
    assert parse_subscriber(body(1, msisdn="4155552671"), phone_region="US").msisdn == "+14155552671"
    with pytest.raises(ValidationError, match="international number"):
        SubscriberIn.model_validate(body(1, msisdn="07911 100001"))  # no region given
    assert SubscriberIn.model_validate(body(1)).msisdn == "+447911100001"  # E.164 needs none


def test_field_errors_name_each_field_for_the_api_or_an_import_report() -> None:
    with pytest.raises(ValidationError) as raised:
        parse_subscriber(body(1, imsi="12", plan="", colour="red"), phone_region="GB")
    assert [as_field_error(item, ["row"]) for item in raised.value.errors(include_url=False)] == [
        FieldError(field="row.imsi", message="an IMSI is exactly 15 digits", code=FieldCode.INVALID_IMSI),
        FieldError(
            field="row.plan",
            message="a plan code is 1-32 characters: letters, digits, '_', '.' or '-', starting with a letter or digit",
            code=FieldCode.INVALID_PLAN,
        ),
        FieldError(field="row.colour", message="Extra inputs are not permitted", code=FieldCode.UNKNOWN_FIELD),
    ]


def test_patch_keeps_nulls_apart_from_absent_fields() -> None:
    patch = SubscriberPatch.model_validate({"email": None, "attributes": {"gone": None, "kept": 1.0}})
    assert patch.model_dump(exclude_unset=True) == {"email": None, "attributes": {"gone": None, "kept": 1}}
