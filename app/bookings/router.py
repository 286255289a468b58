"""HTTP routes of bookable resources and bookings: translation to and from the service, nothing more."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Response, status

from app.api_types import IsoDate, IsoDateTime
from app.auth.deps import require
from app.auth.policy import Capability
from app.auth.service import Principal
from app.bookings.availability import window_end
from app.bookings.deps import BookingServiceDep
from app.bookings.schemas import (
    AffectedBooking,
    Availability,
    BookingCancel,
    BookingCreate,
    BookingOut,
    BookingPage,
    BookingReschedule,
    DailyCounts,
    DayCount,
    ResourceChange,
    ResourceCreate,
    ResourceOut,
    ResourcePage,
    ResourceUpdate,
    SlotOut,
)
from app.bookings.service import MAX_AVAILABILITY_DAYS, MAX_DAILY_COUNTS
from app.concurrency import Versions, etag
from app.deps import IF_MATCH_OPTIONAL, PageParams, domain_router, route_path
from app.errors import FieldCode, ProblemType
from app.openapi import error_responses, invalid, only, problem, query_object
from app.storage.records import BookingStatus
from app.timeutil import as_utc

resources_router = domain_router(prefix="/bookings/resources", tags=["resources"])
bookings_router = domain_router(prefix="/bookings", tags=["bookings"])

Reader = Annotated[Principal, Depends(require(Capability.BOOKINGS_READ))]
Writer = Annotated[Principal, Depends(require(Capability.BOOKINGS_WRITE))]
ResourceWriter = Annotated[Principal, Depends(require(Capability.RESOURCES_WRITE))]
_RESOURCE_ID = r"^[A-Za-z0-9_-]+$"  # as a resource's `id` is created (schemas.Identifier)
ResourceId = Annotated[str, Path(max_length=64, pattern=_RESOURCE_ID)]
BookingId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
OptionalVersions = Annotated[Versions | None, Depends(IF_MATCH_OPTIONAL)]


# --- resources ----------------------------------------------------------------------------------------


@resources_router.post(
    "",
    operation_id="resources_create",
    summary="Create a bookable resource (store, technician, agent desk, room) with its weekly schedule",
    response_model=ResourceOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        invalid(("body.timezone", FieldCode.UNKNOWN_TIME_ZONE), ("body.capacity", FieldCode.TOO_SMALL))
    ),
)
def create_resource(
    body: ResourceCreate, principal: ResourceWriter, service: BookingServiceDep, request: Request, response: Response
) -> ResourceOut:
    resource = service.create_resource(principal.username, body)
    response.headers["Location"] = route_path(request, "resources_get", resource_id=resource.id)
    response.headers["ETag"] = etag(resource.version)
    return ResourceOut.of(resource)


@resources_router.get(
    "",
    operation_id="resources_list",
    summary="List resources, ordered by id",
    response_model=ResourcePage,
    responses=error_responses(ProblemType.INVALID_CURSOR, invalid(("query.limit", FieldCode.TOO_LARGE))),
)
def list_resources(_: Reader, service: BookingServiceDep, paging: PageParams) -> ResourcePage:
    return ResourcePage.of(service.list_resources(limit=paging.limit, cursor=paging.cursor), ResourceOut.of)


@resources_router.get(
    "/{resource_id}",
    operation_id="resources_get",
    summary="One resource; its version is also the ETag",
    response_model=ResourceOut,
    responses=error_responses(ProblemType.NOT_FOUND, invalid(("path.resource_id", FieldCode.PATTERN_MISMATCH))),
)
def get_resource(resource_id: ResourceId, _: Reader, service: BookingServiceDep, response: Response) -> ResourceOut:
    resource = service.get_resource(resource_id)
    response.headers["ETag"] = etag(resource.version)
    return ResourceOut.of(resource)


@resources_router.patch(
    "/{resource_id}",
    operation_id="resources_update",
    summary="Change a resource; refused (409, listing them) if confirmed bookings would fall outside the "
    "schedule or over capacity, unless force=true, which reports them",
    response_model=ResourceChange,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.CONFLICT,
        ProblemType.PRECONDITION_FAILED,
        invalid(("header.if-match", FieldCode.INVALID_ETAG), ("body.slot_minutes", FieldCode.NOT_A_MULTIPLE)),
    ),
)
def update_resource(
    resource_id: ResourceId,
    body: ResourceUpdate,
    principal: ResourceWriter,
    service: BookingServiceDep,
    response: Response,
    versions: OptionalVersions,
    force: Annotated[bool, Query(description="Apply even if confirmed bookings are left outside.")] = False,
) -> ResourceChange:
    result = service.update_resource(principal.username, resource_id, body, force=force, expected_versions=versions)
    response.headers["ETag"] = etag(result.resource.version)
    return ResourceChange(
        resource=ResourceOut.of(result.resource),
        bookings_outside_schedule=[AffectedBooking.model_validate(b.model_dump()) for b in result.outside_schedule],
        bookings_over_capacity=[AffectedBooking.model_validate(b.model_dump()) for b in result.over_capacity],
    )


@resources_router.delete(
    "/{resource_id}",
    operation_id="resources_delete",
    summary="Delete a resource; refused (409) while it has confirmed future bookings",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.CONFLICT,
        ProblemType.PRECONDITION_FAILED,
        invalid(("header.if-match", FieldCode.INVALID_ETAG)),
    ),
)
def delete_resource(
    resource_id: ResourceId, principal: ResourceWriter, service: BookingServiceDep, versions: OptionalVersions
) -> Response:
    service.delete_resource(principal.username, resource_id, expected_versions=versions)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@resources_router.get(
    "/{resource_id}/availability",
    operation_id="resources_availability",
    summary="Every slot in `days` days (1-31) from `from`, with UTC and local times and the seats left",
    response_model=Availability,
    response_model_by_alias=True,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        invalid(("query.days", FieldCode.TOO_LARGE), ("query.from", FieldCode.TIMEZONE_REQUIRED)),
    ),
)
def availability(
    resource_id: ResourceId,
    _: Reader,
    service: BookingServiceDep,
    window_from: Annotated[IsoDateTime, Query(alias="from", description="Window start, with a UTC offset.")],
    days: Annotated[
        int, Query(ge=1, le=MAX_AVAILABILITY_DAYS, description="Length of the window in days (24 hours each).")
    ],
) -> Availability:
    resource, slots = service.availability(resource_id, window_from, days)
    return Availability(
        resource_id=resource.id,
        timezone=resource.timezone,
        active=resource.active,
        window_from=window_from,
        window_to=window_end(as_utc(window_from), days),
        slots=[
            SlotOut(
                start=item.slot.start,
                end=item.slot.end,
                local_start=item.slot.local_start,
                local_end=item.slot.local_end,
                capacity=item.capacity,
                remaining=item.remaining,
            )
            for item in slots
        ],
    )


# --- bookings -----------------------------------------------------------------------------------------


_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_FROM = {"from": {"type": "string", "format": "date-time", "description": "Start at or after."}}
_TO = {"to": {"type": "string", "format": "date-time", "description": "Start before."}}
_STATUS = {"status": {"$ref": "#/components/schemas/BookingStatus"}}
# One filter, and a window that a status needs (a status is over every resource and subscriber).
BOOKINGS_FILTER = query_object(
    "filter",
    {
        "oneOf": [
            only({"resource_id": _ID}, {**_FROM, **_TO}),
            only({"subscriber_uid": _ID}, {**_FROM, **_TO}),
            only({**_STATUS, **_FROM, **_TO}),
        ]
    },
    required=True,
    description="Exactly one of `resource_id`, `subscriber_uid` or `status`, each its own query parameter; "
    "`from` and `to` (ISO-8601 with offset) narrow it, and are required with `status` (of any length: "
    "a page of a long window may hold fewer items than `limit`, even none, and still a `next_cursor`).",
)


@bookings_router.post(
    "",
    operation_id="bookings_create",
    summary="Book one slot for an ACTIVE subscriber; safe to retry with the same Idempotency-Key",
    response_model=BookingOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        problem(ProblemType.CONFLICT, ("body.start", FieldCode.SLOT_FULL)),
        problem(ProblemType.CONFLICT, ("body.subscriber_uid", FieldCode.OVERLAPPING_BOOKING)),
        problem(ProblemType.CONFLICT, ("header.idempotency-key", FieldCode.IDEMPOTENCY_IN_PROGRESS)),
        problem(ProblemType.CONFLICT, ("body.start", FieldCode.MISALIGNED_START)),
        invalid(("header.idempotency-key", FieldCode.IDEMPOTENCY_KEY_REUSED)),
    ),
)
def create_booking(
    body: BookingCreate,
    principal: Writer,
    service: BookingServiceDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Client-chosen key (printable ASCII, <= 255). A retry with the same key and body returns "
            "the same booking for 24 h; the same key with another body is a 422.",
        ),
    ] = None,
) -> BookingOut:
    booking, replayed = service.create_booking(principal.username, body, idempotency_key)
    response.headers["Location"] = route_path(request, "bookings_get", booking_id=booking.id)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return BookingOut.of(booking)


@bookings_router.get(
    "",
    operation_id="bookings_list",
    summary="Bookings of one resource, one subscriber, or with one status (from/to required), by start time",
    response_model=BookingPage,
    responses=error_responses(
        ProblemType.INVALID_CURSOR,
        invalid(("query.subscriber_uid", FieldCode.EXACTLY_ONE_REQUIRED)),
    ),
    openapi_extra=BOOKINGS_FILTER,
)
def list_bookings(
    _: Reader,
    service: BookingServiceDep,
    paging: PageParams,
    resource_id: Annotated[str | None, Query(max_length=64, include_in_schema=False)] = None,
    subscriber_uid: Annotated[str | None, Query(max_length=64, include_in_schema=False)] = None,
    booking_status: Annotated[BookingStatus | None, Query(alias="status", include_in_schema=False)] = None,
    start_from: Annotated[IsoDateTime | None, Query(alias="from", include_in_schema=False)] = None,
    start_to: Annotated[IsoDateTime | None, Query(alias="to", include_in_schema=False)] = None,
) -> BookingPage:
    page = service.list_bookings(
        resource_id=resource_id,
        subscriber_uid=subscriber_uid,
        status=booking_status,
        start_from=start_from,
        start_to=start_to,
        limit=paging.limit,
        cursor=paging.cursor,
    )
    return BookingPage.of(page, BookingOut.of)


@bookings_router.get(
    "/daily-counts",
    operation_id="bookings_daily_counts",
    summary="Bookings (not cancelled) per local day, from counters: one read per day",
    response_model=DailyCounts,
    responses=error_responses(invalid(("query.days", FieldCode.TOO_LARGE), ("query.from", FieldCode.INVALID_DATETIME))),
)
def daily_counts(
    _: Reader,
    service: BookingServiceDep,
    first_day: Annotated[IsoDate, Query(alias="from", description="First day, YYYY-MM-DD.")],
    days: Annotated[int, Query(ge=1, le=MAX_DAILY_COUNTS, description="How many days.")] = 8,
    resource_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_RESOURCE_ID)] = None,
) -> DailyCounts:
    counts = service.daily_counts(first_day, days, resource_id)
    return DailyCounts(
        resource_id=resource_id, days=[DayCount(date=day, bookings=count) for day, count in counts.items()]
    )


@bookings_router.get(
    "/{booking_id}",
    operation_id="bookings_get",
    summary="One booking",
    response_model=BookingOut,
    responses=error_responses(ProblemType.NOT_FOUND, invalid(("path.booking_id", FieldCode.PATTERN_MISMATCH))),
)
def get_booking(booking_id: BookingId, _: Reader, service: BookingServiceDep) -> BookingOut:
    return BookingOut.of(service.get_booking(booking_id))


@bookings_router.post(
    "/{booking_id}/cancel",
    operation_id="bookings_cancel",
    summary="Cancel a CONFIRMED booking; its seat is freed at once",
    response_model=BookingOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        problem(ProblemType.CONFLICT, ("status", FieldCode.INVALID_TRANSITION)),
        ProblemType.PRECONDITION_FAILED,
        invalid(("body.reason", FieldCode.TOO_LONG)),
    ),
)
def cancel_booking(
    booking_id: BookingId, principal: Writer, service: BookingServiceDep, body: BookingCancel | None = None
) -> BookingOut:
    return BookingOut.of(service.cancel(principal.username, booking_id, body.reason if body else None))


@bookings_router.post(
    "/{booking_id}/reschedule",
    operation_id="bookings_reschedule",
    summary="Move a CONFIRMED booking to another slot of its resource: all or nothing",
    response_model=BookingOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        problem(ProblemType.CONFLICT, ("status", FieldCode.ALREADY_STARTED)),
        problem(ProblemType.CONFLICT, ("body.start", FieldCode.SLOT_FULL)),
        ProblemType.PRECONDITION_FAILED,
        problem(ProblemType.CONFLICT, ("body.start", FieldCode.MISALIGNED_START)),
        invalid(("body.start", FieldCode.MISSING)),
    ),
)
def reschedule_booking(
    booking_id: BookingId, body: BookingReschedule, principal: Writer, service: BookingServiceDep
) -> BookingOut:
    return BookingOut.of(service.reschedule(principal.username, booking_id, body))


@bookings_router.post(
    "/{booking_id}/complete",
    operation_id="bookings_complete",
    summary="Mark a CONFIRMED booking whose slot has started as COMPLETED",
    response_model=BookingOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        problem(ProblemType.CONFLICT, ("status", FieldCode.NOT_STARTED)),
        ProblemType.PRECONDITION_FAILED,
        invalid(("path.booking_id", FieldCode.PATTERN_MISMATCH)),
    ),
)
def complete_booking(booking_id: BookingId, principal: Writer, service: BookingServiceDep) -> BookingOut:
    return BookingOut.of(service.mark(principal.username, booking_id, BookingStatus.COMPLETED))


@bookings_router.post(
    "/{booking_id}/no-show",
    operation_id="bookings_no_show",
    summary="Mark a CONFIRMED booking whose slot has started as NO_SHOW",
    response_model=BookingOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        problem(ProblemType.CONFLICT, ("status", FieldCode.NOT_STARTED)),
        ProblemType.PRECONDITION_FAILED,
        invalid(("path.booking_id", FieldCode.PATTERN_MISMATCH)),
    ),
)
def no_show_booking(booking_id: BookingId, principal: Writer, service: BookingServiceDep) -> BookingOut:
    return BookingOut.of(service.mark(principal.username, booking_id, BookingStatus.NO_SHOW))
