"""Subscriber routes: HTTP in and out (bodies, ETag/If-Match, masking); the rules are in the service."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request, Response, status
from pydantic import BaseModel

from app.auth.deps import require
from app.auth.policy import Capability
from app.auth.service import Principal
from app.concurrency import Versions, etag
from app.deps import IF_MATCH_OPTIONAL, IF_MATCH_REQUIRED, PageParams, domain_router, json_body, route_path
from app.errors import FieldCode, ProblemType
from app.openapi import error_responses, invalid, json_request_body, only, problem, query_object
from app.storage.base import Page
from app.storage.records import SubscriberRecord, SubscriberStatus
from app.subscribers.deps import SubscriberServiceDep
from app.subscribers.fields import (
    EMAIL_SCHEMA,
    IMSI_PATTERN,
    MAX_EMAIL_LENGTH,
    PHONE_NUMBER_FORMAT,
    PLAN_PATTERN,
    UID_PATTERN,
)
from app.subscribers.schemas import (
    HistoryEntryOut,
    HistoryPage,
    SubscriberIn,
    SubscriberOut,
    SubscriberPage,
    SubscriberPatch,
    SubscriberReplace,
)
from app.subscribers.service import SearchField

router = domain_router(prefix="/subscribers", tags=["subscribers"])
Reader = Annotated[Principal, Depends(require(Capability.SUBSCRIBERS_READ))]
Writer = Annotated[Principal, Depends(require(Capability.SUBSCRIBERS_WRITE))]
Model = TypeVar("Model", bound=BaseModel)

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
# Bounded before it reaches the store (DynamoDB refuses keys over 2 KB with an error, not a miss).
UidPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", examples=["sub-000123"])]
RequiredVersions = Annotated[Versions, Depends(IF_MATCH_REQUIRED)]
OptionalVersions = Annotated[Versions | None, Depends(IF_MATCH_OPTIONAL)]


# "Exactly one of": the four criteria are the properties of one exploded object, of which `oneOf`
# admits one (each is still its own query parameter on the wire, `?imsi=...`).
SEARCH_CRITERION = query_object(
    "criterion",
    {
        "oneOf": [
            only({"msisdn": {"type": "string", "maxLength": 32, "format": PHONE_NUMBER_FORMAT}}),
            only({"imsi": {"type": "string", "pattern": rf"^\s*{IMSI_PATTERN.pattern}\s*$"}}),
            only({"email": EMAIL_SCHEMA}),
            only({"uid_prefix": {"type": "string", "pattern": f"^{UID_PATTERN.pattern}$"}}),
        ]
    },
    required=True,
    description="Exactly one of `msisdn`, `imsi`, `email` or `uid_prefix`, each sent as its own query "
    "parameter, e.g. `?imsi=234150999999999`.",
)


def _unmasked(principal: Principal) -> bool:
    return principal.can(Capability.SUBSCRIBERS_UNMASKED)


def _body(model: type[Model], *accepted: str) -> Any:
    """A body read with the service's validation context (FastAPI's own body parsing has none)."""

    async def read(request: Request, service: SubscriberServiceDep) -> Model:
        return await json_body(request, model, accepted, service.validation_context)

    return Depends(read)


CreateBody = Annotated[SubscriberIn, _body(SubscriberIn, JSON)]
ReplaceBody = Annotated[SubscriberReplace, _body(SubscriberReplace, JSON)]
PatchBody = Annotated[SubscriberPatch, _body(SubscriberPatch, MERGE_PATCH, JSON)]


def _answer(response: Response, subscriber: SubscriberRecord, principal: Principal) -> SubscriberOut:
    response.headers["ETag"] = etag(subscriber.version)
    return SubscriberOut.of(subscriber, unmasked=_unmasked(principal))


def _page(page: Page[SubscriberRecord], principal: Principal) -> SubscriberPage:
    unmasked = _unmasked(principal)
    return SubscriberPage.of(page, lambda subscriber: SubscriberOut.of(subscriber, unmasked=unmasked))


# The principal comes before the body in every signature: a caller without the capability gets
# 401/403 before their body is even read.


@router.post(
    "",
    operation_id="subscribers_create",
    summary="Create a subscriber; msisdn, imsi and uid must be unused",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriberOut,
    openapi_extra=json_request_body(SubscriberIn, JSON),
    responses={
        201: {"headers": {"ETag": {"schema": {"type": "string"}}}},
        **error_responses(
            problem(ProblemType.CONFLICT, ("body.msisdn", FieldCode.ALREADY_EXISTS)),
            ProblemType.UNSUPPORTED_MEDIA_TYPE,
            invalid(("body.msisdn", FieldCode.INVALID_MSISDN), ("body.imsi", FieldCode.INVALID_IMSI)),
        ),
    },
)
def create_subscriber(
    principal: Writer,
    service: SubscriberServiceDep,
    body: CreateBody,
    request: Request,
    response: Response,
) -> SubscriberOut:
    subscriber = service.create(principal.username, body)
    response.headers["Location"] = route_path(request, "subscribers_get", uid=subscriber.uid)
    return _answer(response, subscriber, principal)


@router.get(
    "",
    operation_id="subscribers_list",
    summary="List subscribers, filtered by status and/or plan, ordered by uid",
    description="Ordered by uid; filtered by `plan` alone, ordered by status, then uid. "
    "Viewers see imsi, iccid and email masked.",
    response_model=SubscriberPage,
    responses=error_responses(ProblemType.INVALID_CURSOR, invalid(("query.status", FieldCode.INVALID_CHOICE))),
)
def list_subscribers(
    principal: Reader,
    service: SubscriberServiceDep,
    paging: PageParams,
    status_filter: Annotated[SubscriberStatus | None, Query(alias="status")] = None,
    plan: Annotated[str | None, Query(max_length=32, pattern=f"^{PLAN_PATTERN.pattern}$")] = None,
) -> SubscriberPage:
    return _page(service.list(status=status_filter, plan=plan, limit=paging.limit, cursor=paging.cursor), principal)


@router.get(
    "/search",
    operation_id="subscribers_search",
    summary="Find subscribers by msisdn, imsi, email or uid prefix (give exactly one)",
    description="Each is an index lookup. msisdn accepts national numbers (read in DEFAULT_PHONE_REGION); "
    "email matches case-insensitively. Viewers may search by imsi or email too; results are masked.",
    response_model=SubscriberPage,
    responses=error_responses(
        ProblemType.INVALID_CURSOR,
        invalid(("query", FieldCode.EXACTLY_ONE_REQUIRED), ("query.msisdn", FieldCode.INVALID_MSISDN)),
    ),
    openapi_extra=SEARCH_CRITERION,
)
def search_subscribers(
    principal: Reader,
    service: SubscriberServiceDep,
    paging: PageParams,
    msisdn: Annotated[str | None, Query(max_length=32, include_in_schema=False)] = None,
    imsi: Annotated[str | None, Query(max_length=32, include_in_schema=False)] = None,
    email: Annotated[str | None, Query(max_length=MAX_EMAIL_LENGTH, include_in_schema=False)] = None,
    uid_prefix: Annotated[str | None, Query(max_length=64, include_in_schema=False)] = None,
) -> SubscriberPage:
    criteria: dict[SearchField, str | None] = {"msisdn": msisdn, "imsi": imsi, "email": email, "uid_prefix": uid_prefix}
    return _page(service.search(criteria, limit=paging.limit, cursor=paging.cursor), principal)


@router.get(
    "/{uid}",
    operation_id="subscribers_get",
    summary="One subscriber, with its version as ETag",
    response_model=SubscriberOut,
    responses={
        200: {"headers": {"ETag": {"schema": {"type": "string"}}}},
        **error_responses(ProblemType.NOT_FOUND, invalid(("path.uid", FieldCode.PATTERN_MISMATCH))),
    },
)
def get_subscriber(uid: UidPath, principal: Reader, service: SubscriberServiceDep, response: Response) -> SubscriberOut:
    return _answer(response, service.get(uid), principal)


def _change_problems() -> dict[int | str, dict[str, Any]]:
    """What a replace and a merge patch of one subscriber can both answer (a fresh dict per route:
    building the document adds to each route's own)."""
    return error_responses(
        ProblemType.NOT_FOUND,
        problem(ProblemType.CONFLICT, ("body.msisdn", FieldCode.ALREADY_EXISTS)),
        ProblemType.PRECONDITION_FAILED,
        ProblemType.UNSUPPORTED_MEDIA_TYPE,
        invalid(("body.msisdn", FieldCode.INVALID_MSISDN), ("header.if-match", FieldCode.INVALID_ETAG)),
        ProblemType.PRECONDITION_REQUIRED,
    )


@router.put(
    "/{uid}",
    operation_id="subscribers_replace",
    summary="Replace every mutable field (If-Match required); omitted optional fields are cleared",
    response_model=SubscriberOut,
    openapi_extra=json_request_body(SubscriberReplace, JSON),
    responses=_change_problems(),
)
def replace_subscriber(
    uid: UidPath,
    principal: Writer,
    service: SubscriberServiceDep,
    versions: RequiredVersions,
    body: ReplaceBody,
    response: Response,
) -> SubscriberOut:
    return _answer(response, service.replace(principal.username, uid, body, versions), principal)


@router.patch(
    "/{uid}",
    operation_id="subscribers_update",
    summary="Change some fields with a JSON merge patch (If-Match required)",
    description="`application/merge-patch+json` (or `application/json`): present fields replace, `null` clears "
    "email or iccid, `attributes` is merged key by key and a `null` value removes a key.",
    response_model=SubscriberOut,
    openapi_extra=json_request_body(SubscriberPatch, MERGE_PATCH, JSON),
    responses=_change_problems(),
)
def update_subscriber(
    uid: UidPath,
    principal: Writer,
    service: SubscriberServiceDep,
    versions: RequiredVersions,
    body: PatchBody,
    response: Response,
) -> SubscriberOut:
    return _answer(response, service.patch(principal.username, uid, body, versions), principal)


@router.delete(
    "/{uid}",
    operation_id="subscribers_delete",
    summary="Delete a subscriber, freeing its msisdn and imsi (If-Match optional; checked when sent)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        problem(ProblemType.CONFLICT, ("path.uid", FieldCode.HAS_BOOKINGS)),
        ProblemType.PRECONDITION_FAILED,
        invalid(("header.if-match", FieldCode.INVALID_ETAG)),
        ProblemType.PRECONDITION_REQUIRED,
    ),
)
def delete_subscriber(
    uid: UidPath, principal: Writer, service: SubscriberServiceDep, versions: OptionalVersions
) -> Response:
    service.delete(principal.username, uid, versions)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{uid}/history",
    operation_id="subscribers_history",
    summary="Changes of a subscriber, newest first (still readable after it is deleted)",
    response_model=HistoryPage,
    responses=error_responses(ProblemType.INVALID_CURSOR, invalid(("query.limit", FieldCode.TOO_LARGE))),
)
def subscriber_history(
    uid: UidPath, principal: Reader, service: SubscriberServiceDep, paging: PageParams
) -> HistoryPage:
    unmasked = _unmasked(principal)
    page = service.history(uid, limit=paging.limit, cursor=paging.cursor)
    return HistoryPage.of(page, lambda entry: HistoryEntryOut.of(entry, unmasked=unmasked))
