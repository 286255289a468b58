"""Optimistic concurrency over HTTP: the ETag a versioned thing is sent with, and the one If-Match rule.

Every versioned thing (subscribers, bookable resources) has a `version`, sent as the strong ETag
`"<version>"`. If-Match is read by one parser (`parse_if_match`), through the `IfMatch` dependency of `app.deps`:

- a strong or weak entity tag, or a comma-separated list of them (at most 512 characters);
- it matches when one strong tag names the current version: weak tags never match, because
  If-Match compares strongly (RFC 9110, 13.1.1), nor do tags that are no version; both are a 412;
- `*` is refused with 428 like a missing header: it would turn the check into a blind overwrite;
- anything else is a 422 naming `header.if-match`, code `invalid_etag`.

Routes that require the header still answer its absence with 428 (Precondition Required), not with
a validation error (see `app.deps.IfMatch`). This module knows no web framework: services use it.
"""

from __future__ import annotations

import re

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
