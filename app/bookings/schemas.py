"""API models of resources, availability and bookings. Times are UTC ISO-8601 with an offset."""

from __future__ import annotations

import zoneinfo
from datetime import date as Day
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.api_types import IsoDate, IsoDateTime, PageOut
from app.bookings.availability import zone
from app.errors import FieldCode, invalid_value
from app.storage.records import BookingRecord, BookingStatus, OpeningHours, ResourceKind, ResourceRecord

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# On a 5-minute grid: subscribers' busy time is tracked on it, so every slot starts on it.
OpeningTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5][05]$")]
ClosingTime = Annotated[str, StringConstraints(pattern=r"^(([01]\d|2[0-3]):[0-5][05]|24:00)$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
SlotMinutes = Annotated[int, Field(ge=5, le=240, multiple_of=5, description="Slot length in minutes (5-240, by 5).")]
Capacity = Annotated[int, Field(ge=1, le=1000, description="Seats per slot.")]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

_SCHEDULE_EXAMPLE: dict[str, Any] = {
    "mon": [{"open": "09:00", "close": "12:30"}, {"open": "13:30", "close": "18:00"}],
    "tue": [{"open": "09:00", "close": "18:00"}],
    "sat": [{"open": "10:00", "close": "14:00"}],
}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpeningHoursIn(StrictModel):
    """An interval of the local wall clock. A `close` at or before `open` is on the next day: the
    interval runs past midnight (`open` == `close` is 24 hours)."""

    open: OpeningTime = Field(description="Local wall-clock time HH:MM, a multiple of 5 minutes.")
    close: ClosingTime = Field(
        description="Local wall-clock time HH:MM, a multiple of 5 minutes; at or before `open`, it is on the "
        "next day. 24:00 or 00:00 is the midnight that ends the day (answered as 24:00)."
    )

    @field_validator("close")
    @classmethod
    def _midnight_ends_the_day(cls, value: str) -> str:
        return "24:00" if value == "00:00" else value


DayHours = Annotated[
    list[OpeningHoursIn],
    Field(
        max_length=12,
        description="Opening intervals, each belonging to the date it opens on; overlapping ones are merged.",
    ),
]


def _closed_or_hours(schema: dict[str, Any]) -> None:
    """The document says what `_closed_or_hours` checks: closed all day, or special hours."""
    schema["oneOf"] = [
        {"properties": {"closed": {"const": True}, "hours": {"maxItems": 0}}, "required": ["closed"]},
        {"properties": {"closed": {"const": False}, "hours": {"minItems": 1}}, "required": ["hours"]},
    ]


class ScheduleExceptionIn(StrictModel):
    """A date closed all day (`closed: true`) or with special hours instead of the weekly ones."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_closed_or_hours)

    date: IsoDate = Field(description="Local date of the resource.")
    closed: StrictBool = Field(False, description="Closed all day.")
    hours: DayHours = Field(default_factory=list, description="Special hours replacing the weekly ones.")

    @model_validator(mode="after")
    def _closed_or_hours(self) -> ScheduleExceptionIn:
        if self.closed == bool(self.hours):
            raise invalid_value(
                FieldCode.INVALID_COMBINATION, "give either closed=true or special hours, not both or neither"
            )
        return self


def _one_entry_per_date(exceptions: list[ScheduleExceptionIn]) -> list[ScheduleExceptionIn]:
    """Entries for the same date add up, as intervals of one day do: the date has the hours of
    all of them, and is closed all day only if each of them says so."""
    by_date: dict[Day, ScheduleExceptionIn] = {}
    for exception in exceptions:
        known = by_date.get(exception.date)
        if known is None:
            by_date[exception.date] = exception
        elif exception.hours:
            by_date[exception.date] = known.model_copy(update={"closed": False, "hours": known.hours + exception.hours})
    return [by_date[day] for day in sorted(by_date)]


Exceptions = Annotated[
    list[ScheduleExceptionIn],
    Field(max_length=366, description="Dates with other hours; entries for one date add up."),
    AfterValidator(_one_entry_per_date),
]
WeeklySchedule = dict[Weekday, DayHours]


def _known_zone(name: str) -> str:
    zone(name)
    return name


# The document lists the zones this server knows (its tz database), so a client can offer them.
KnownTimeZone = Annotated[
    TimeZoneName,
    AfterValidator(_known_zone),
    Field(json_schema_extra=lambda schema: schema.update(enum=sorted(zoneinfo.available_timezones()))),
]


class ResourceCreate(StrictModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "Oxford Street store",
                "kind": "store",
                "timezone": "Europe/London",
                "slot_minutes": 30,
                "capacity": 2,
                "weekly_schedule": _SCHEDULE_EXAMPLE,
                "exceptions": [{"date": "2026-12-25", "closed": True}],
            }
        },
    )

    name: Name
    kind: ResourceKind
    timezone: KnownTimeZone = Field(description="IANA time zone, e.g. Europe/London.")
    slot_minutes: SlotMinutes
    capacity: Capacity
    weekly_schedule: WeeklySchedule = Field(description="Opening hours per weekday; a missing day is closed.")
    exceptions: Exceptions = Field(default_factory=list)
    active: StrictBool = True


def _update_schema(schema: dict[str, Any]) -> None:
    """Every field is optional, none nullable: leaving a field out keeps it, null is refused."""
    schema["example"] = {"capacity": 3, "active": True}
    for field in schema["properties"].values():
        variants = [variant for variant in field.pop("anyOf") if variant != {"type": "null"}]
        field.update(variants[0])
        field.pop("default", None)


class ResourceUpdate(StrictModel):
    """Only the fields sent change. A change that would leave confirmed bookings outside the schedule
    or over capacity is refused (409) unless `force=true`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_update_schema)

    name: Name | None = None
    kind: ResourceKind | None = None
    timezone: KnownTimeZone | None = None
    slot_minutes: SlotMinutes | None = None
    capacity: Capacity | None = None
    weekly_schedule: WeeklySchedule | None = None
    exceptions: Exceptions | None = None
    active: StrictBool | None = None


class OpeningHoursOut(BaseModel):
    open: str
    close: str


class ScheduleExceptionOut(BaseModel):
    date: Day
    closed: bool
    hours: list[OpeningHoursOut]


class ResourceOut(BaseModel):
    id: str
    name: str
    kind: ResourceKind
    timezone: str
    slot_minutes: int
    capacity: int
    weekly_schedule: dict[str, list[OpeningHoursOut]]
    exceptions: list[ScheduleExceptionOut]
    active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Also sent as the ETag; send it back in If-Match to update safely.")

    @classmethod
    def of(cls, resource: ResourceRecord) -> ResourceOut:
        return cls.model_validate(resource.model_dump(exclude={"bookings_revision"}))


class ResourcePage(PageOut):
    items: list[ResourceOut]


class AffectedBooking(BaseModel):
    id: str
    subscriber_uid: str
    start: datetime
    end: datetime


class ResourceChange(BaseModel):
    resource: ResourceOut
    bookings_outside_schedule: list[AffectedBooking] = Field(
        description="Confirmed future bookings the (forced) change left outside the schedule."
    )
    bookings_over_capacity: list[AffectedBooking] = Field(
        description="Confirmed future bookings in slots that now hold more bookings than the capacity."
    )


class SlotOut(BaseModel):
    start: datetime = Field(description="UTC.")
    end: datetime = Field(description="UTC.")
    local_start: datetime = Field(description="In the resource's time zone, with its offset.")
    local_end: datetime
    capacity: int
    remaining: int = Field(description="Seats left; 0 for a slot that has started or an inactive resource.")


class Availability(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "resource_id": "3f1c0c7e0a4b4d8e9f2a1b3c4d5e6f70",
                "timezone": "Europe/London",
                "active": True,
                "from": "2026-10-25T00:00:00Z",
                "to": "2026-10-26T00:00:00Z",
                "slots": [
                    {
                        "start": "2026-10-25T00:30:00Z",
                        "end": "2026-10-25T01:00:00Z",
                        "local_start": "2026-10-25T01:30:00+01:00",
                        "local_end": "2026-10-25T01:00:00+00:00",
                        "capacity": 2,
                        "remaining": 1,
                    }
                ],
            }
        },
        populate_by_name=True,
    )

    resource_id: str
    timezone: str
    active: bool
    window_from: datetime = Field(alias="from")
    window_to: datetime = Field(alias="to")
    slots: list[SlotOut]


class BookingCreate(StrictModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "resource_id": "3f1c0c7e0a4b4d8e9f2a1b3c4d5e6f70",
                "subscriber_uid": "sub-000123",
                "start": "2026-12-01T09:30:00Z",
                "notes": "SIM swap, bring ID",
            }
        },
    )

    resource_id: Identifier
    subscriber_uid: Identifier
    start: IsoDateTime = Field(description="Start of a slot, with a UTC offset.")
    end: IsoDateTime | None = Field(None, description="Optional; if sent it must be the end of that slot.")
    notes: Notes | None = None


class BookingReschedule(StrictModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"start": "2026-12-02T10:00:00Z"}})

    start: IsoDateTime = Field(description="Start of the new slot of the same resource.")
    end: IsoDateTime | None = None


class BookingCancel(StrictModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"reason": "subscriber called to cancel"}})

    reason: Reason | None = None


class BookingOut(BaseModel):
    id: str
    resource_id: str
    subscriber_uid: str
    start: datetime
    end: datetime
    local_date: str = Field(description="Date of the slot in the resource's time zone.")
    status: BookingStatus
    notes: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None
    version: int

    @classmethod
    def of(cls, booking: BookingRecord) -> BookingOut:
        return cls.model_validate(booking.model_dump())


class BookingPage(PageOut):
    items: list[BookingOut]


class DayCount(BaseModel):
    date: Day = Field(description="A local date of the resources (each in its own time zone).")
    bookings: int = Field(description="Bookings not cancelled, by the local date of their slot.")


class DailyCounts(BaseModel):
    resource_id: str | None
    days: list[DayCount]


def opening_hours(hours: list[OpeningHoursIn]) -> list[OpeningHours]:
    return [OpeningHours(open=interval.open, close=interval.close) for interval in hours]
