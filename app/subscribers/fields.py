"""Normalisation of subscriber fields, shared by the API and the bulk importer.

Each function takes raw input and returns the stored form, or raises a `ValueError` whose message
is the reason shown to the caller and whose type is the field's code (`app.errors.invalid_value`).
They are written for throughput (the importer validates tens of thousands of rows per second):

* MSISDNs already in E.164 are checked against phonenumbers' own metadata with regular
  expressions compiled once per region and number length, which is what `is_valid_number`
  decides, at a fraction of its cost. Anything else (national formats, separators, numbers the
  quick check can't vouch for) takes the full `phonenumbers.parse` path, so the quick check can
  only ever accept what phonenumbers accepts (`tests/subscribers/test_fields.py` compares them).
  phonenumbers itself is imported on first use: ~20 ms a Lambda cold start serving anything else
  doesn't pay.
* Emails in the plain ASCII form nearly every address has are checked by one regular expression
  that accepts a subset of what `email-validator` accepts; everything else goes to
  `email-validator`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from email_validator import EmailNotValidError, validate_email

from app.errors import FieldCode, invalid_value

UID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Path segments a uid can't take: `GET /subscribers/search` would shadow such a subscriber.
RESERVED_UIDS = frozenset({"search"})
IMSI_PATTERN = re.compile(r"[0-9]{15}")
ICCID_PATTERN = re.compile(r"[0-9]{19,20}")
PLAN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
ATTRIBUTE_KEY_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

# OpenAPI `format`s for rules a pattern can't state: a number valid per libphonenumber's metadata
# (E.164, or national in DEFAULT_PHONE_REGION), and 19-20 digits with a Luhn check digit.
PHONE_NUMBER_FORMAT = "phone-number"
ICCID_FORMAT = "iccid"

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_BYTES = 8192
MAX_ATTRIBUTE_STRING = 1024
# Integers beyond 2^53 lose precision in JavaScript clients; MongoDB stores at most 64-bit integers.
MAX_ATTRIBUTE_INT = 2**53 - 1
# DynamoDB keeps numbers of magnitude 1e-130 to just under 1e126 (it refuses others outright).
MIN_ATTRIBUTE_MAGNITUDE = 1e-130
MAX_ATTRIBUTE_MAGNITUDE = 1e125

AttributeValue = str | int | float | bool

# --- MSISDN ---------------------------------------------------------------------------------------

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_DIGITS = re.compile(r"[0-9]{4,17}")
_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")
_NUMBER_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
_NON_GEOGRAPHIC = "001"
_REGION_CODE = re.compile(r"[A-Z]{2}")


@cache
def _phone_library() -> ModuleType:
    import phonenumbers

    # Metadata patterns compiled once and kept (phonenumbers recompiles them on every call otherwise).
    phonenumbers.enable_pattern_cache()
    return phonenumbers


def normalise_msisdn(value: str, region: str | None) -> str:
    """E.164 (`+` and digits) of a valid number; national input is read as a number of `region`."""
    compact = value.strip().translate(_SEPARATORS)
    if _E164.fullmatch(compact) and _quick_valid_e164(compact):
        return compact
    if region is not None and _DIGITS.fullmatch(compact):
        quick = _quick_national(compact, region)
        if quick is not None:
            return quick
    phonenumbers = _phone_library()
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        if region is None and not compact.startswith("+"):
            raise invalid_value(
                FieldCode.INVALID_MSISDN, "not an international number: start it with + and the country code"
            ) from None
        raise invalid_value(FieldCode.INVALID_MSISDN, "not a phone number") from None
    if number.extension or not phonenumbers.is_valid_number(number):
        raise invalid_value(FieldCode.INVALID_MSISDN, "not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _quick_valid_e164(number: str) -> bool:
    """True only if phonenumbers would parse `number` unchanged and call it valid.

    Mirrors `is_valid_number`: the region is the country code's only region, or the first whose
    leading digits (or, without those, whose patterns) match; the number is valid when it matches
    the region's general pattern and the pattern of at least one number type. Numbers whose
    leading digits look like a national prefix are left to phonenumbers, which may strip them.
    """
    digits = number[1:]
    for length in (1, 2, 3):
        regions = _phone_library().COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length]))
        if regions:
            break
    else:
        return False
    national = digits[length:]
    if _national_prefix_check(regions[0])(national):
        return False
    if len(regions) == 1:
        return _region_accepts(regions[0], national)
    for region in regions:
        leading = _leading_digits_check(region)
        if leading is not None:
            if leading(national):
                return _region_accepts(region, national)
        elif _region_accepts(region, national):
            return True
    return False


def _quick_national(digits: str, region: str) -> str | None:
    """E.164 of a national number, if phonenumbers would read it so; None means "ask phonenumbers".

    Only the plain case: no international dialling prefix, no leading country code (phonenumbers
    may read either as part of the number), and a national prefix that is simply removed.
    """
    rules = _national_rules(region)
    if rules is None:
        return None
    country_code, is_international, national_prefix = rules
    if is_international(digits) or digits.startswith(country_code):
        return None
    prefix = national_prefix(digits) if national_prefix else None
    candidate = f"+{country_code}{digits[prefix.end() :] if prefix else digits}"
    if _E164.fullmatch(candidate) and _quick_valid_e164(candidate):
        return candidate
    return None


@cache
def _national_rules(
    region: str,
) -> tuple[str, Callable[[str], re.Match[str] | None], Callable[[str], re.Match[str] | None] | None] | None:
    metadata = _metadata(region)
    if metadata is None or metadata.national_prefix_transform_rule or not metadata.international_prefix:
        return None
    national_prefix = None
    if metadata.national_prefix_for_parsing:
        pattern = re.compile(metadata.national_prefix_for_parsing)
        if pattern.groups:
            return None  # carrier codes or rewriting: phonenumbers' job
        national_prefix = pattern.match
    return str(metadata.country_code), re.compile(metadata.international_prefix).match, national_prefix


def _region_accepts(region: str, national: str) -> bool:
    matcher = _region_matcher(region, len(national))
    return matcher is not None and matcher(national) is not None


@cache
def _region_matcher(region: str, length: int) -> Callable[[str], re.Match[str] | None] | None:
    """One compiled expression per region and length: the general pattern as a look-ahead, then
    the patterns of every number type whose possible lengths include `length`."""
    metadata = _metadata(region)
    if metadata is None or not _length_allowed(metadata.general_desc, length):
        return None
    general = metadata.general_desc.national_number_pattern
    types = []
    for name in _NUMBER_TYPE_DESCS:
        desc = getattr(metadata, name)
        if desc is not None and desc.national_number_pattern and _length_allowed(desc, length):
            types.append(f"(?:{desc.national_number_pattern})")
    if not general or not types:
        return None
    return re.compile(rf"(?=(?:{general})\Z)(?:{'|'.join(types)})").fullmatch


def _length_allowed(desc: Any, length: int) -> bool:
    return desc is not None and (not desc.possible_length or length in desc.possible_length)


@cache
def _leading_digits_check(region: str) -> Callable[[str], re.Match[str] | None] | None:
    metadata = _metadata(region)
    return re.compile(metadata.leading_digits).match if metadata and metadata.leading_digits else None


@cache
def _national_prefix_check(region: str) -> Callable[[str], bool]:
    metadata = _metadata(region)
    prefix = metadata.national_prefix_for_parsing if metadata else None
    if region == _NON_GEOGRAPHIC or metadata is None:
        return lambda national: True  # non-geographic numbers: always the full path
    if not prefix:
        return lambda national: False
    pattern = re.compile(prefix)
    return lambda national: pattern.match(national) is not None


def _metadata(region: str) -> Any:
    if region == _NON_GEOGRAPHIC:
        return None
    return _phone_library().PhoneMetadata.metadata_for_region(region, None)


def supported_regions() -> list[str]:
    """Every region `is_supported_region` accepts, sorted (for the OpenAPI document)."""
    spec = importlib.util.find_spec("phonenumbers")
    locations = (spec.submodule_search_locations or []) if spec else []
    names = (
        path.stem.removeprefix("region_")
        for location in locations
        for path in (Path(location) / "data").glob("region_*.py")
    )
    return sorted({name for name in names if _REGION_CODE.fullmatch(name)})


def is_supported_region(region: str) -> bool:
    """Whether phonenumbers has metadata for `region` (one `data/region_XX.py` per region).

    Answered from the package's files, without importing it: settings are validated at every
    cold start, and importing phonenumbers costs ~15 ms there (tests pin this to SUPPORTED_REGIONS).
    """
    if not _REGION_CODE.fullmatch(region):
        return False
    spec = importlib.util.find_spec("phonenumbers")
    locations = (spec.submodule_search_locations or []) if spec else []
    return any((Path(location) / "data" / f"region_{region}.py").is_file() for location in locations)


# --- identifiers ----------------------------------------------------------------------------------


def normalise_uid(value: str) -> str:
    if not UID_PATTERN.fullmatch(value):
        raise invalid_value(FieldCode.INVALID_UID, "1-64 characters: letters, digits, '_' or '-'")
    if value in RESERVED_UIDS:
        raise invalid_value(FieldCode.RESERVED_UID, f"{value!r} is reserved")
    return value


def normalise_imsi(value: str) -> str:
    value = value.strip()
    if not IMSI_PATTERN.fullmatch(value):
        raise invalid_value(FieldCode.INVALID_IMSI, "an IMSI is exactly 15 digits")
    return value


def normalise_iccid(value: str) -> str:
    value = value.strip().replace(" ", "")
    if not ICCID_PATTERN.fullmatch(value):
        raise invalid_value(FieldCode.INVALID_ICCID, "an ICCID is 19 or 20 digits")
    if not luhn_valid(value):
        raise invalid_value(FieldCode.INVALID_ICCID, "the ICCID's check digit (Luhn) is wrong")
    return value


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        total += _DOUBLED[digit] if position % 2 else digit
    return total % 10 == 0


def normalise_plan(value: str) -> str:
    value = value.strip()
    if not PLAN_PATTERN.fullmatch(value):
        raise invalid_value(
            FieldCode.INVALID_PLAN,
            "a plan code is 1-32 characters: letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return value


# --- email ----------------------------------------------------------------------------------------

_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"(?:{_ATOM}(?:\.{_ATOM})*)@(?:{_LABEL}\.)+[a-z]{{2,63}}")
_SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")
MAX_EMAIL_LENGTH = 254


def _any_case(word: str) -> str:
    return "".join(f"[{char}{char.upper()}]" for char in word)


# What the document adds to `format: email`: the refused special-use domains (RFC 6761), any case.
EMAIL_SCHEMA: dict[str, object] = {
    "type": "string",
    "maxLength": MAX_EMAIL_LENGTH,
    "format": "email",
    "not": {"pattern": rf"[.@]({'|'.join(_any_case(name) for name in _SPECIAL_USE_DOMAINS)})\.?$"},
}


def normalise_email(value: str) -> str:
    """Lower-cased address: the portal treats addresses case-insensitively (and searches them so)."""
    address = value.strip().lower()
    if len(address) > MAX_EMAIL_LENGTH:
        raise invalid_value(FieldCode.INVALID_EMAIL, f"an email address is at most {MAX_EMAIL_LENGTH} characters")
    if _PLAIN_EMAIL.fullmatch(address) and _plain_email_fits(address):
        return address
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid_value(FieldCode.INVALID_EMAIL, str(exc)) from None
    return str(result.normalized).lower()


def _plain_email_fits(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    if len(local) > 64 or len(domain) > 253:
        return False
    # "--" may be Punycode or an IDNA-invalid label: email-validator decides those.
    return "--" not in domain and domain.rsplit(".", 1)[-1] not in _SPECIAL_USE_DOMAINS


# --- attributes -----------------------------------------------------------------------------------


def normalise_attributes(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """A flat map of scalars, bounded in keys and size. Integral floats become ints, so both stores
    (DynamoDB keeps numbers as decimals) give back exactly what was stored."""
    if len(values) > MAX_ATTRIBUTES:
        raise invalid_value(FieldCode.INVALID_ATTRIBUTES, f"at most {MAX_ATTRIBUTES} attributes")
    result = {check_attribute_name(key): normalise_attribute_value(key, value) for key, value in values.items()}
    size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise invalid_value(
            FieldCode.INVALID_ATTRIBUTES, f"attributes take {size} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}"
        )
    return result


def check_attribute_name(key: Any) -> str:
    if not isinstance(key, str) or not ATTRIBUTE_KEY_PATTERN.fullmatch(key):
        raise invalid_value(
            FieldCode.INVALID_ATTRIBUTES,
            f"attribute name {str(key)[:70]!r}: 1-64 characters, letters, digits, '_' or '-', starting with a letter",
        )
    return key


def normalise_attribute_value(key: str, value: Any) -> AttributeValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_ATTRIBUTE_INT:
            raise invalid_value(
                FieldCode.INVALID_ATTRIBUTES, f"attribute {key!r}: integers are limited to +/-{MAX_ATTRIBUTE_INT}"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid_value(FieldCode.INVALID_ATTRIBUTES, f"attribute {key!r}: numbers must be finite")
        if value.is_integer() and abs(value) <= MAX_ATTRIBUTE_INT:
            return int(value)
        if not MIN_ATTRIBUTE_MAGNITUDE <= abs(value) <= MAX_ATTRIBUTE_MAGNITUDE:
            raise ValueError(
                f"attribute {key!r}: numbers are 0 or of magnitude {MIN_ATTRIBUTE_MAGNITUDE:g} to "
                f"{MAX_ATTRIBUTE_MAGNITUDE:g}"
            )
        return value
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_STRING:
            raise invalid_value(
                FieldCode.INVALID_ATTRIBUTES,
                f"attribute {key!r}: strings are at most {MAX_ATTRIBUTE_STRING} characters",
            )
        return value
    raise invalid_value(
        FieldCode.INVALID_ATTRIBUTES,
        f"attribute {key!r}: only strings, numbers and booleans are allowed (no lists, objects or null)",
    )


# --- masking --------------------------------------------------------------------------------------


def mask_digits(value: str, *, keep_start: int, keep_end: int) -> str:
    hidden = len(value) - keep_start - keep_end
    if hidden <= 0:
        return "*" * len(value)
    return value[:keep_start] + "*" * hidden + value[len(value) - keep_end :]


def mask_imsi(value: str) -> str:
    """MCC+MNC (who issued it) and the last three digits: `310410******123`."""
    return mask_digits(value, keep_start=6, keep_end=3)


def mask_iccid(value: str) -> str:
    """Industry, country and issuer prefix and the last four digits."""
    return mask_digits(value, keep_start=6, keep_end=4)


def mask_email(value: str) -> str:
    """First character of the local part and the domain: `j***@example.com`."""
    local, at, domain = value.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
