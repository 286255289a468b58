"""Field normalisation: the rules, and the quick paths agreeing with phonenumbers / email-validator."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email

from app.subscribers import fields
from app.subscribers.fields import (
    luhn_valid,
    mask_email,
    mask_iccid,
    mask_imsi,
    normalise_attributes,
    normalise_email,
    normalise_iccid,
    normalise_imsi,
    normalise_msisdn,
    normalise_plan,
    normalise_uid,
)


def _phonenumbers_e164(value: str, region: str | None) -> str | None:
    """What phonenumbers alone makes of `value`: the reference the quick paths must agree with."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- MSISDN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+447911123456", "GB", "+447911123456"),
        ("+44 7911 123456", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("07911-123-456", "GB", "+447911123456"),
        ("+44 (0)7911 123456", "GB", "+447911123456"),
        ("00447911123456", "GB", "+447911123456"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("1 415 555 2671", "US", "+14155552671"),
        ("+33 6 12 34 56 78", None, "+33612345678"),
        ("015112345678", "DE", "+4915112345678"),
        ("+39 06 1234 5678", None, "+390612345678"),
    ],
)
def test_msisdn_is_stored_as_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_msisdn(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("+4479111", "GB", "not a valid phone number"),
        ("+999123456789", "GB", "not a phone number"),
        ("07911 123456", None, "not an international number"),
        ("hello", "GB", "not a phone number"),
        ("+447911123456 ext. 12", "GB", "not a valid phone number"),
        ("+12345", "US", "not a valid phone number"),
        ("+447700900123", "GB", "not a valid phone number"),  # Ofcom's range for drama: never assigned
    ],
)
def test_invalid_msisdns_are_refused_with_a_reason(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_msisdn(raw, region)


def _e164_samples(rng: random.Random) -> list[str]:
    """Example numbers of every region and type, mutated, plus random digit strings."""
    samples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is None:
                continue
            national = phonenumbers.national_significant_number(example)
            samples.append(f"+{example.country_code}{national}")
            for _ in range(4):
                kept = rng.randint(len(national) // 2, len(national))
                tail_length = len(national) - kept + rng.choice((-1, 0, 0, 1))
                tail = "".join(rng.choice("0123456789") for _ in range(tail_length))
                samples.append(f"+{example.country_code}{national[:kept]}{tail}")
    for _ in range(3000):
        samples.append("+" + str(rng.randint(1, 9)) + str(rng.randrange(10**13)).zfill(rng.randint(6, 13)))
    return samples


def test_quick_e164_check_accepts_only_what_phonenumbers_accepts_unchanged() -> None:
    accepted = 0
    for sample in _e164_samples(random.Random(20261123)):
        if fields._E164.fullmatch(sample) and fields._quick_valid_e164(sample):
            accepted += 1
            assert _phonenumbers_e164(sample, None) == sample, sample
    assert accepted > 500  # the quick path is really taken


def test_quick_national_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(7)
    accepted = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            continue
        formatted = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        national = "".join(char for char in formatted if char.isdigit())
        candidates = [national, phonenumbers.national_significant_number(example)]
        candidates += [national[:-3] + str(rng.randrange(1000)).zfill(3) for _ in range(4)]
        for candidate in candidates:
            quick = fields._quick_national(candidate, region)
            if quick is not None:
                accepted += 1
                assert quick == _phonenumbers_e164(candidate, region), (region, candidate)
    assert accepted > 300


def test_supported_regions_are_known_without_importing_phonenumbers() -> None:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    codes = [first + second for first in letters for second in letters]
    assert [code for code in codes if fields.is_supported_region(code)] == sorted(phonenumbers.SUPPORTED_REGIONS)
    assert not fields.is_supported_region("001")
    assert not fields.is_supported_region("gb")


# --- identifiers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("uid", ["a", "A-b_9", "x" * 64])
def test_valid_uids(uid: str) -> None:
    assert normalise_uid(uid) == uid


@pytest.mark.parametrize("uid", ["", "x" * 65, "has space", "a/b", "é", "search"])
def test_invalid_uids(uid: str) -> None:
    with pytest.raises(ValueError, match=r"characters|reserved"):
        normalise_uid(uid)


def test_imsi_is_exactly_15_digits() -> None:
    assert normalise_imsi(" 234150999999999 ") == "234150999999999"
    fullwidth = "\uff12" * 15  # digits to str.isdigit, not to the IMSI rule
    for bad in ["23415099999999", "2341509999999990", "23415099999999x", fullwidth]:
        with pytest.raises(ValueError, match="15 digits"):
            normalise_imsi(bad)


def _with_check_digit(body: str) -> str:
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def test_iccid_needs_19_or_20_digits_and_a_luhn_check_digit() -> None:
    good19 = _with_check_digit("894411006825627005")
    good20 = _with_check_digit("8944110068256270054")
    assert normalise_iccid(good19) == good19
    assert normalise_iccid(good20) == good20
    wrong_check = good19[:-1] + str((int(good19[-1]) + 1) % 10)
    with pytest.raises(ValueError, match="Luhn"):
        normalise_iccid(wrong_check)
    for bad in ["894411006825627005", "894411006825627005412", "89441100682562700x4"]:
        with pytest.raises(ValueError, match="19 or 20 digits"):
            normalise_iccid(bad)


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert luhn_valid("4111111111111111")


@pytest.mark.parametrize("plan", ["GOLD", "unlimited-5g", "a.b_c", "X" * 32])
def test_valid_plans(plan: str) -> None:
    assert normalise_plan(plan) == plan


@pytest.mark.parametrize("plan", ["", "-GOLD", "X" * 33, "GOLD PLAN", "GOLD#1"])
def test_invalid_plans(plan: str) -> None:
    with pytest.raises(ValueError, match="plan code"):
        normalise_plan(plan)


# --- email ----------------------------------------------------------------------------------------------


def test_emails_are_lower_cased() -> None:
    assert normalise_email(" Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_email("josé@exämple.com") == "josé@exämple.com"


EMAILS = [
    "a@example.com",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.ie",
    "x@localhost",
    "x@example.test",
    "x@example.local",
    "x@ab--cd.com",
    "x@xn--bcher-kva.example",
    "x@xn--zz.example",
    ".x@example.com",
    "x.@example.com",
    "x..y@example.com",
    "x@-example.com",
    "x@example-.com",
    "x@example.c",
    "x@example.123",
    "x@123.example.com",
    "x@[127.0.0.1]",
    '"quoted"@example.com',
    "no-at-sign",
    "@example.com",
    "x@",
    "x@example..com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "x@" + "a" * 63 + ".com",
    "x@" + "a" * 64 + ".com",
    "x@" + ".".join(["a" * 60] * 4) + ".com",
    "x@example.arpa",
    "x@sub.onion",
]


@pytest.mark.parametrize("address", EMAILS)
def test_email_quick_path_agrees_with_email_validator(address: str) -> None:
    try:
        expected: str | None = str(validate_email(address.lower(), check_deliverability=False).normalized).lower()
    except EmailNotValidError:
        expected = None
    try:
        actual: str | None = normalise_email(address)
    except ValueError:
        actual = None
    assert actual == expected


# --- attributes -----------------------------------------------------------------------------------------


def test_attributes_keep_scalars_and_turn_integral_floats_into_ints() -> None:
    assert normalise_attributes({"a": "x", "b": True, "c": 3, "d": 2.0, "e": 0.25}) == {
        "a": "x",
        "b": True,
        "c": 3,
        "d": 2,
        "e": 0.25,
    }


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({f"k{n}": n for n in range(51)}, "at most 50 attributes"),
        ({f"k{n}": "x" * 1000 for n in range(9)}, "bytes as JSON"),
        ({"k": "x" * 1025}, "at most 1024 characters"),
        ({"k": [1]}, "only strings, numbers and booleans"),
        ({"k": {"nested": 1}}, "only strings, numbers and booleans"),
        ({"k": None}, "only strings, numbers and booleans"),
        ({"k": float("nan")}, "finite"),
        ({"k": 2**53}, "integers are limited"),
        ({"1abc": 1}, "attribute name"),
        ({"a.b": 1}, "attribute name"),
        ({"$where": 1}, "attribute name"),
        ({"k" * 65: 1}, "attribute name"),
    ],
)
def test_attribute_bounds(attributes: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_attributes(attributes)


# --- masking --------------------------------------------------------------------------------------------


def test_masking() -> None:
    assert mask_imsi("310410123456123") == "310410******123"
    assert mask_iccid("8944110068256270054") == "894411*********0054"
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_email("broken") == "***"
