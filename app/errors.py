"""The API's error vocabulary: domain errors and the RFC 9457 problem they are answered with.

Two catalogues make the error contract, each declared once here and enumerated in the OpenAPI
document (docs/api-conventions.md explains them):

* `ProblemType`: every kind of problem the API answers with, by its stable `type` URI, with its
  status, title and meaning. A client switches on `type`.
* `FieldCode`: every machine reason an `errors[]` entry can carry (`errors[].code`), in one style
  (snake_case). pydantic's own error types are mapped onto it (`field_code`).

Services raise `DomainError` subclasses. The storage layer raises facts about the store
(`app.storage.base`); a service translates those whose answer names a request field or means
something else in its domain, and `meaning_of` gives every other one its one default meaning.
Every error response, including request validation and unexpected failures, has the same shape
(`Problem`); `app.problem_responses` writes it. This module imports no web framework, so neither
does a service that raises its errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum, StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from app.storage.base import (
    BlobTooLarge,
    ConditionFailed,
    CursorRejected,
    RecordMissing,
    StaleVersion,
    StorageError,
    StoreUnavailable,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Problem types are relative URI references: names to compare, not links (docs/api-conventions.md).
PROBLEM_TYPE_BASE = "/problems/"


class ProblemType(Enum):
    """Every problem type the API returns: `type` URI, status, title, meaning."""

    status: int
    title: str
    meaning: str

    def __new__(cls, slug: str, status: int, title: str, meaning: str) -> ProblemType:
        member = object.__new__(cls)
        member._value_ = PROBLEM_TYPE_BASE + slug
        member.status, member.title, member.meaning = status, title, meaning
        return member

    @property
    def uri(self) -> str:
        return str(self.value)

    @property
    def slug(self) -> str:
        return self.uri.removeprefix(PROBLEM_TYPE_BASE)

    BAD_REQUEST = (
        "bad-request",
        400,
        "Bad request",
        "The body can't be read as its Content-Type says (e.g. a multipart body without its boundary).",
    )
    INVALID_CURSOR = (
        "invalid-cursor",
        404,
        "Invalid cursor",
        "The `cursor` has the documented shape but was not issued for this query (edited, forged, or from "
        "another query), so the page it names does not exist (`errors` names `query.cursor`): start again from "
        "the first page. A cursor of another shape is a 422.",
    )
    UNAUTHORIZED = (
        "unauthorized",
        401,
        "Authentication required",
        "No access token, or it is invalid, expired or revoked; at login and refresh: wrong credentials or an "
        "ended session. Sign in again.",
    )
    FORBIDDEN = (
        "forbidden",
        403,
        "Not allowed",
        "Signed in, but the role may not do this, or not to this object (e.g. another user's job).",
    )
    NOT_FOUND = ("not-found", 404, "Not found", "No such resource at this path (or no such path).")
    METHOD_NOT_ALLOWED = (
        "method-not-allowed",
        405,
        "Method Not Allowed",
        "The path exists, but not with this method: the `Allow` header lists the methods it takes.",
    )
    CONFLICT = (
        "conflict",
        409,
        "Conflict",
        "The change conflicts with the current state: a unique value already in use, a full slot, a state that "
        "does not allow it. `errors[].code` says which, when it concerns one field; nothing was written.",
    )
    PRECONDITION_FAILED = (
        "precondition-failed",
        412,
        "Precondition failed",
        "If-Match does not match the current version (or the record changed meanwhile): reload, re-apply, retry. "
        "Nothing was written.",
    )
    PAYLOAD_TOO_LARGE = (
        "request-entity-too-large",
        413,
        "Request Entity Too Large",
        "The body (or the uploaded file) is larger than the server takes.",
    )
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "The body's Content-Type is not one this operation takes (`detail` names those it does).",
    )
    VALIDATION_ERROR = (
        "validation-error",
        422,
        "Request validation failed",
        "The request is invalid as sent: `errors` lists every bad field with a `code` (see FieldCode).",
    )
    PRECONDITION_REQUIRED = (
        "precondition-required",
        428,
        "Precondition required",
        "This change needs If-Match with the ETag of the version you read (`*` is not accepted).",
    )
    TOO_MANY_REQUESTS = (
        "too-many-requests",
        429,
        "Too many requests",
        "Too many attempts from this client: wait the seconds `Retry-After` says.",
    )
    INTERNAL_ERROR = (
        "internal-error",
        500,
        "Internal server error",
        "An unexpected failure; the response says nothing more. Quote its `request_id` when reporting it.",
    )
    SERVICE_BUSY = (
        "service-busy",
        503,
        "Service busy",
        "This server has no capacity for the request right now (e.g. every password-hashing slot is taken): "
        "retry after `Retry-After` seconds.",
    )
    SERVICE_UNAVAILABLE = (
        "service-unavailable",
        503,
        "Service unavailable",
        "The store is unreachable or kept refusing the write (throttling, contention): retry shortly.",
    )


PROBLEM_TYPES: dict[str, ProblemType] = {kind.uri: kind for kind in ProblemType}


class FieldCode(StrEnum):
    """Every `errors[].code`: why a field was refused."""

    meaning: str

    def __new__(cls, code: str, meaning: str) -> FieldCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    # Any field, checked by the schema
    MISSING = "missing", "a required field, parameter or header is absent"
    UNKNOWN_FIELD = "unknown_field", "a field the schema does not define"
    NULL_NOT_ALLOWED = "null_not_allowed", "null for a field that can't be cleared"
    INVALID_TYPE = "invalid_type", "the wrong JSON type, or text that is not the declared type (e.g. `limit=abc`)"
    INVALID_CHOICE = "invalid_choice", "not one of the allowed values"
    TOO_SHORT = "too_short", "shorter (text) or with fewer items (list) than allowed"
    TOO_LONG = "too_long", "longer (text) or with more items (list, map) than allowed"
    TOO_SMALL = "too_small", "a number below the minimum"
    TOO_LARGE = "too_large", "a number above the maximum, or a file over the size limit"
    NOT_A_MULTIPLE = "not_a_multiple", "a number off the field's step (e.g. slot minutes by 5)"
    PATTERN_MISMATCH = "pattern_mismatch", "text that does not match the field's pattern"
    INVALID_DATETIME = "invalid_datetime", "not an ISO-8601 date or time"
    TIMEZONE_REQUIRED = "timezone_required", "a time without a UTC offset"
    JSON_INVALID = "json_invalid", "the body (or a JSON form field) is not valid UTF-8 JSON"
    JSON_TOO_DEEP = "json_too_deep", "JSON nested deeper than the server parses"
    INVALID = "invalid", "breaks a rule of the field that has no code of its own (the message says which)"
    # Cross-field rules of one request
    EXACTLY_ONE_REQUIRED = "exactly_one_required", "give exactly one of the alternatives the message names"
    INVALID_COMBINATION = "invalid_combination", "options that do not go together"
    # Headers
    INVALID_ETAG = "invalid_etag", 'If-Match is not a list of entity tags such as `"3"`'
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", "the Idempotency-Key was used with a different body"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress", "a request with this Idempotency-Key is still in flight"
    # Pages
    INVALID_CURSOR = "invalid_cursor", "the cursor is malformed, edited or from another query"
    # Stored state (409, 412)
    ALREADY_EXISTS = "already_exists", "the value is unique and already in use (uid, msisdn, imsi, username, id)"
    STALE_VERSION = "stale_version", "the record changed since it was read"
    NOT_FOUND = "not_found", "the record the field names does not exist"
    # Subscribers
    INVALID_UID = "invalid_uid", "a uid is 1-64 of letters, digits, `_` or `-`"
    RESERVED_UID = "reserved_uid", "a uid the API reserves (`search`)"
    UID_IMMUTABLE = "uid_immutable", "the body's uid differs from the path's"
    INVALID_MSISDN = "invalid_msisdn", "not a valid phone number"
    INVALID_IMSI = "invalid_imsi", "an IMSI is exactly 15 digits"
    INVALID_ICCID = "invalid_iccid", "an ICCID is 19-20 digits with a valid Luhn check digit"
    INVALID_EMAIL = "invalid_email", "not a valid email address"
    INVALID_PLAN = "invalid_plan", "a plan code is 1-32 of letters, digits, `_`, `.` or `-`"
    INVALID_ATTRIBUTES = "invalid_attributes", "an attribute name, value, count or total size breaks the rules"
    HAS_BOOKINGS = "has_bookings", "the subscriber (or resource) has future confirmed bookings"
    # Users and passwords
    INVALID_USERNAME = "invalid_username", "not a valid username"
    WRONG_PASSWORD = "wrong_password", "the current password is not correct"
    PASSWORD_TOO_SHORT = "password_too_short", "the new password is shorter than the policy's minimum"
    PASSWORD_TOO_LONG = "password_too_long", "the new password is longer than the server hashes"
    PASSWORD_IS_USERNAME = "password_is_username", "the new password is the username"
    UNKNOWN_HASH_SCHEME = "unknown_hash_scheme", "an imported password hash of a scheme the server can't verify"
    # Resources and bookings
    UNKNOWN_TIME_ZONE = "unknown_time_zone", "not an IANA time zone name"
    UNKNOWN_RESOURCE = "unknown_resource", "no resource with this id"
    RESOURCE_INACTIVE = "resource_inactive", "the resource takes no new bookings"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber", "no subscriber with this uid"
    SUBSCRIBER_NOT_ACTIVE = "subscriber_not_active", "the subscriber is not ACTIVE"
    IN_PAST = "in_past", "the slot has already started"
    MISALIGNED_START = "misaligned_start", "not the start of one of the resource's slots"
    OUTSIDE_SCHEDULE = "outside_schedule", "outside the resource's opening hours"
    END_MISMATCH = "end_mismatch", "a booking is one slot: `end` must be the slot's end"
    SLOT_FULL = "slot_full", "every seat of the slot is taken"
    OVERLAPPING_BOOKING = "overlapping_booking", "the subscriber already has a booking at this time"
    NOT_STARTED = "not_started", "the booking's slot has not started yet"
    ALREADY_STARTED = "already_started", "the booking's slot has already started"
    INVALID_TRANSITION = "invalid_transition", "the booking's status does not allow this change"
    # Webhooks
    UNSAFE_URL = (
        "unsafe_url",
        "a webhook URL the server won't send to (not https, or a private, loopback or metadata address)",
    )
    # Jobs
    UNKNOWN_REGION = "unknown_region", "not an ISO 3166 region the phone number rules know"
    NOT_AVAILABLE = "not_available", "a kind of job this server does not run"


# pydantic's error types, as the API's codes. The families the API's schemas can produce are
# named; `field_code` maps the rest by kind (parsing and type errors, dates), else to `invalid`.
_PYDANTIC_CODES: dict[str, FieldCode] = {
    "missing": FieldCode.MISSING,
    "missing_argument": FieldCode.MISSING,
    "extra_forbidden": FieldCode.UNKNOWN_FIELD,
    "unexpected_keyword_argument": FieldCode.UNKNOWN_FIELD,
    "none_required": FieldCode.INVALID_TYPE,
    "string_too_short": FieldCode.TOO_SHORT,
    "too_short": FieldCode.TOO_SHORT,
    "bytes_too_short": FieldCode.TOO_SHORT,
    "string_too_long": FieldCode.TOO_LONG,
    "too_long": FieldCode.TOO_LONG,
    "bytes_too_long": FieldCode.TOO_LONG,
    "url_too_long": FieldCode.TOO_LONG,
    "greater_than": FieldCode.TOO_SMALL,
    "greater_than_equal": FieldCode.TOO_SMALL,
    "less_than": FieldCode.TOO_LARGE,
    "less_than_equal": FieldCode.TOO_LARGE,
    "multiple_of": FieldCode.NOT_A_MULTIPLE,
    "string_pattern_mismatch": FieldCode.PATTERN_MISMATCH,
    "enum": FieldCode.INVALID_CHOICE,
    "literal_error": FieldCode.INVALID_CHOICE,
    "union_tag_invalid": FieldCode.INVALID_CHOICE,
    "timezone_aware": FieldCode.TIMEZONE_REQUIRED,
    "json_invalid": FieldCode.JSON_INVALID,
}
_CODES: dict[str, FieldCode] = {code.value: code for code in FieldCode}


def field_code(error_type: str) -> FieldCode:
    """The API's code for a pydantic error type (our validators raise `invalid_value`, whose type is a code)."""
    known = _CODES.get(error_type) or _PYDANTIC_CODES.get(error_type)
    if known is not None:
        return known
    if error_type.startswith(("date", "time", "timezone")):
        return FieldCode.INVALID_DATETIME
    if error_type.endswith(("_type", "_parsing", "_parsing_size")) or "_from_" in error_type:
        return FieldCode.INVALID_TYPE
    return FieldCode.INVALID


def invalid_value(code: FieldCode, message: str) -> PydanticCustomError:
    """A `ValueError` for validators and normalisers: pydantic reports it as `code`, with `message`."""
    return PydanticCustomError(code.value, message)


def code_of(error: ValueError) -> FieldCode:
    """The code of a `ValueError` raised by a validator or normaliser (`invalid` if it carries none)."""
    return field_code(error.type) if isinstance(error, PydanticCustomError) else FieldCode.INVALID


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. `body.msisdn` or `query.limit`.")
    message: str = Field(description="The reason, for people; may change between versions.")
    code: FieldCode = Field(description="Stable machine-readable reason: one of FieldCode.")


class Problem(BaseModel):
    """RFC 9457 problem details. Some problems add members of their own (e.g. a resource change refused
    for the bookings it would strand lists them as `bookings_outside_schedule`)."""

    model_config = ConfigDict(json_schema_extra=lambda schema: Problem._document(schema))

    type: ProblemType = Field(description="The kind of problem (a URI reference): switch on it.")
    title: str = Field(description="The problem type's title; the same for every occurrence of the type.")
    status: int = Field(description="The HTTP status, as in the response's status line.")
    # Left out when empty, never sent as null: the schema says "optional", not "nullable".
    detail: str | SkipJsonSchema[None] = Field(None, description="What went wrong this time, for people.")
    instance: str | SkipJsonSchema[None] = Field(None, description="Path of the request that failed.")
    request_id: str | SkipJsonSchema[None] = Field(None, description="The request's X-Request-ID, as logged.")
    errors: list[FieldError] | SkipJsonSchema[None] = Field(None, description="One entry per refused field.")

    @staticmethod
    def _document(schema: dict[str, Any]) -> None:
        # An optional member has no default to show: it is absent, not null.
        for member in schema["properties"].values():
            member.pop("default", None)
        schema["example"] = example_problem(
            ProblemType.VALIDATION_ERROR,
            [FieldError(field="body.msisdn", message="not a valid phone number", code=FieldCode.INVALID_MSISDN)],
        )


# The only detail a 500 gives: the logs have the rest.
INTERNAL_ERROR_DETAIL = "An unexpected error occurred; quote the request id when reporting it."
# A realistic `detail` per problem type for the documented examples.
_EXAMPLE_DETAILS: dict[ProblemType, str] = {
    ProblemType.BAD_REQUEST: "Missing boundary in multipart.",
    ProblemType.INVALID_CURSOR: "cursor is malformed, tampered with or from another query",
    ProblemType.UNAUTHORIZED: "access token is invalid or expired",
    ProblemType.FORBIDDEN: "role 'viewer' may not do this (needs subscribers:write)",
    ProblemType.NOT_FOUND: "subscriber 'sub-000123' not found",
    ProblemType.CONFLICT: "the change conflicts with the current state; nothing was written",
    ProblemType.PRECONDITION_FAILED: "subscriber 'sub-000123' is at version 4; reload it and retry",
    ProblemType.PAYLOAD_TOO_LARGE: "the body exceeds 1048576 bytes",
    ProblemType.UNSUPPORTED_MEDIA_TYPE: "send the body as application/json",
    ProblemType.PRECONDITION_REQUIRED: 'send If-Match with the subscriber\'s ETag (e.g. If-Match: "3")',
    ProblemType.TOO_MANY_REQUESTS: "too many login attempts from this address; try again later",
    ProblemType.INTERNAL_ERROR: INTERNAL_ERROR_DETAIL,
    ProblemType.SERVICE_BUSY: "the server is busy checking passwords; try again in a moment",
    ProblemType.SERVICE_UNAVAILABLE: "DynamoDB is unreachable",
}


def example_problem(
    problem: ProblemType, errors: Sequence[FieldError] = (), instance: str = "/subscribers/sub-000123"
) -> dict[str, Any]:
    """A response body of `problem` as the server writes it (the OpenAPI examples are built by this)."""
    return Problem(
        type=problem,
        title=problem.title,
        status=problem.status,
        detail=_example_detail(problem, errors),
        instance=instance,
        request_id="4f0c3c1e-7d7b-4b4e-9c55-0a2f4b1f2a11",
        errors=list(errors) or None,
    ).model_dump(mode="json", exclude_none=True)


def _example_detail(problem: ProblemType, errors: Sequence[FieldError]) -> str:
    if problem is ProblemType.VALIDATION_ERROR:
        return validation_detail(len(errors))
    # A problem naming one field says the same in its detail (a service's conflict, a storage error).
    return errors[0].message if errors else _EXAMPLE_DETAILS[problem]


def validation_detail(count: int) -> str:
    return f"{count} {'field is' if count == 1 else 'fields are'} invalid"


class DomainError(Exception):
    problem: ClassVar[ProblemType] = ProblemType.BAD_REQUEST

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.problem.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = headers
        self.extra = extra or {}


class InvalidInput(DomainError):
    """Input that passed the schema but breaks a rule; names the field."""

    problem = ProblemType.VALIDATION_ERROR

    def __init__(self, field: str, message: str, code: FieldCode, **kwargs: Any) -> None:
        super().__init__(message, errors=[FieldError(field=field, message=message, code=code)], **kwargs)


class Unauthorized(DomainError):
    problem = ProblemType.UNAUTHORIZED

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(DomainError):
    problem = ProblemType.FORBIDDEN


class NotFoundError(DomainError):
    problem = ProblemType.NOT_FOUND


class ConflictError(DomainError):
    problem = ProblemType.CONFLICT


def field_conflict(field: str, message: str, code: FieldCode) -> ConflictError:
    """A 409 about one field of the request (its detail says the same as the field's message)."""
    return ConflictError(message, errors=[FieldError(field=field, message=message, code=code)])


class PreconditionFailedError(DomainError):
    problem = ProblemType.PRECONDITION_FAILED


class PreconditionRequired(DomainError):
    problem = ProblemType.PRECONDITION_REQUIRED


class UnsupportedMediaType(DomainError):
    problem = ProblemType.UNSUPPORTED_MEDIA_TYPE


class PayloadTooLargeError(DomainError):
    problem = ProblemType.PAYLOAD_TOO_LARGE


class TooManyRequests(DomainError):
    problem = ProblemType.TOO_MANY_REQUESTS

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


class InvalidCursor(DomainError):
    """A page cursor the store did not issue for this query (the page it names does not exist)."""

    problem = ProblemType.INVALID_CURSOR

    def __init__(self, message: str) -> None:
        super().__init__(
            message, errors=[FieldError(field="query.cursor", message=message, code=FieldCode.INVALID_CURSOR)]
        )


class ServiceUnavailable(DomainError):
    """The store is unreachable or kept refusing the write; retry shortly."""

    problem = ProblemType.SERVICE_UNAVAILABLE


class ServiceBusy(DomainError):
    """This process has no capacity for the request now (not the client's fault); retry shortly."""

    problem = ProblemType.SERVICE_BUSY

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


def _field_path(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location) or "body"


def as_field_error(item: Mapping[str, Any], prefix: Sequence[str] = ()) -> FieldError:
    """One of pydantic's errors as the API's field error (`loc` prefixed, e.g. with `body` or `row`)."""
    # pydantic prefixes a validator's ValueError message with "Value error, "; the reason reads better without.
    message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
    return FieldError(
        field=_field_path([*prefix, *item.get("loc", ())]), message=message, code=field_code(str(item["type"]))
    )


# What each storage fact means to the API when the service that met it has nothing to add.
_MEANINGS: dict[type[StorageError], Callable[[str], DomainError]] = {
    RecordMissing: NotFoundError,
    StaleVersion: PreconditionFailedError,
    ConditionFailed: ConflictError,
    CursorRejected: InvalidCursor,
    StoreUnavailable: ServiceUnavailable,
    BlobTooLarge: PayloadTooLargeError,
}


def meaning_of(fact: StorageError) -> DomainError | None:
    """The domain error a storage fact no service translated is answered with, worded as the store
    put it; None for a fact nobody expects to reach the API (a bug, answered with a 500)."""
    for kind in type(fact).__mro__:
        meaning = _MEANINGS.get(kind)
        if meaning is not None:
            return meaning(str(fact))
    return None
