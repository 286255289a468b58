"""Optimistic concurrency over HTTP: the ETag a versioned thing is sent with, and the one If-Match rule.

Every versioned thing (subscribers, bookable resources) has a `version`, sent as the strong ETag
`"<version>"`. If-Match is read by one parser, through the `IfMatch` dependency:

- a strong or weak entity tag, or a comma-separated list of them (at most 512 characters);
- it matches when one strong tag names the current version: weak tags never match, because
  If-Match compares strongly (RFC 9110, 13.1.1), nor do tags that are no version; both are a 412;
- `*` is refused with 428 like a missing header: it would turn the check into a blind overwrite;
- anything else is a 422 naming `header.if-match`, code `invalid_etag`.

Routes that require the header still answer its absence with 428 (Precondition Required), not with
a validation error: FastAPI is told the header is optional and the OpenAPI document, through
`openapi_parameter`, that it is required.
"""

# No `from __future__ import annotations`: FastAPI reads the signature of `IfMatch.__call__`.

import re
from typing import Annotated, Any

from fastapi import Header

from app.errors import FieldCode, InvalidInput, PreconditionRequired

MAX_IF_MATCH_LENGTH = 512
# An entity tag's characters (RFC 9110 etagc, ASCII only): anything visible but a double quote.
_TAG = r'(?:W/)?"[!#-~]*"'
IF_MATCH_PATTERN = rf"^[ \t]*{_TAG}(?:[ \t]*,[ \t]*{_TAG})*[ \t]*$"
_ONE_TAG = re.compile(r'(W/)?"([!#-~]*)"')
_VERSION = re.compile(r"[0-9]{1,12}")
Versions = frozenset[int]


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str) -> Versions:
    """The versions an If-Match header names (empty when none of its tags can match)."""
    if header.strip() == "*":
        raise PreconditionRequired('If-Match: * is not accepted; send the ETag you read (e.g. If-Match: "3")')
    if len(header) > MAX_IF_MATCH_LENGTH or re.fullmatch(IF_MATCH_PATTERN, header) is None:
        raise InvalidInput(
            "header.if-match", 'expected entity tags such as "3" (comma-separated)', code=FieldCode.INVALID_ETAG
        )
    return frozenset(int(value) for weak, value in _ONE_TAG.findall(header) if not weak and _VERSION.fullmatch(value))


class IfMatch:
    """Dependency: the versions the request's If-Match accepts; None when it is optional and absent."""

    def __init__(self, *, required: bool) -> None:
        self.required = required

    async def __call__(
        self, if_match: Annotated[str | None, Header(include_in_schema=False)] = None
    ) -> Versions | None:
        if if_match is None:  # present but empty is malformed, not absent
            if self.required:
                raise PreconditionRequired('send If-Match with the ETag you read (e.g. If-Match: "3")')
            return None
        return parse_if_match(if_match)

    def openapi_parameter(self) -> dict[str, Any]:
        when = (
            "Required: the ETag of the version you read (428 without it, 412 if stale)."
            if self.required
            else "Optional: the ETag of the version you read; when sent, a stale one is a 412."
        )
        return {
            "name": "if-match",
            "in": "header",
            "required": self.required,
            "description": f'{when} One or more entity tags, e.g. `"3"` or `"3", "4"`; a weak tag never '
            "matches; `*` is refused with 428.",
            # The example sits in the schema too: generators that fill headers from letters and digits
            # (schemathesis's coverage phase) then still have a valid value to start from.
            "schema": {
                "type": "string",
                "maxLength": MAX_IF_MATCH_LENGTH,
                "pattern": IF_MATCH_PATTERN,
                "examples": ['"3"'],
            },
            "example": '"3"',
        }


IF_MATCH_REQUIRED = IfMatch(required=True)
IF_MATCH_OPTIONAL = IfMatch(required=False)
