"""Message texts: plain-text templates (`templates/<kind>.email.txt`, `<kind>.sms.txt`) filled in
with `string.Template`, times shown in the resource's time zone.

An email template's first line is its subject, the rest its body. The values put in are the
subscriber's and the resource's own text, so each is cleaned first: control characters (a newline
would start a new header line in a subject) become spaces, and its length is bounded. English
names of days and months are spelt here, not taken from the process's locale (Lambda's is C).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.storage.records import BookingRecord, NotificationKind, ResourceRecord

TEMPLATES = Path(__file__).with_name("templates")
SMS_LIMIT = 160  # one GSM-7 segment
_SMS_RESOURCE_CHARACTERS = 40
_VALUE_CHARACTERS = 128
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str
    sms: str


@cache
def _template(kind: NotificationKind, channel: str) -> Template:
    return Template((TEMPLATES / f"{kind.value}.{channel}.txt").read_text(encoding="utf-8"))


def clean(value: str, *, limit: int = _VALUE_CHARACTERS) -> str:
    """One line of printable text, at most `limit` characters."""
    text = "".join(" " if unicodedata.category(char)[0] in "CZ" and char != " " else char for char in value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _zone(resource: ResourceRecord | None) -> ZoneInfo:
    try:
        return ZoneInfo(resource.timezone) if resource else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _date(moment: datetime) -> str:
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def _date_short(moment: datetime) -> str:
    return f"{_DAYS[moment.weekday()][:3]} {moment.day} {_MONTHS[moment.month - 1][:3]}"


def _times(start: datetime, end: datetime) -> str:
    return f"{start:%H:%M}-{end:%H:%M}"


def render(
    kind: NotificationKind,
    *,
    booking: BookingRecord,
    resource: ResourceRecord | None,
    first_name: str,
    previous: tuple[datetime, datetime] | None = None,
) -> RenderedMessage:
    """The email (subject, body) and SMS text of `kind` for `booking`, in its resource's time zone."""
    zone = _zone(resource)
    start, end = booking.start.astimezone(zone), booking.end.astimezone(zone)
    resource_name = clean(resource.name if resource else booking.resource_id)
    values = {
        "first_name": clean(first_name),
        "resource": resource_name,
        "booking_id": booking.id,
        "ref": booking.id[:8],
        "date": _date(start),
        "date_short": _date_short(start),
        "time": _times(start, end),
        "start_time": f"{start:%H:%M}",
        "zone": f"{start.tzname()} ({zone.key})",
        "zone_abbreviation": start.tzname() or zone.key,
        "previous_date": "",
        "previous_date_short": "",
        "previous_time": "",
        "previous_start_time": "",
    }
    if previous is not None:
        before_start, before_end = (moment.astimezone(zone) for moment in previous)
        values.update(
            previous_date=_date(before_start),
            previous_date_short=_date_short(before_start),
            previous_time=f"{_times(before_start, before_end)} {before_start.tzname()}",
            previous_start_time=f"{before_start:%H:%M}",
        )
    subject, _, body = _template(kind, "email").substitute(values).partition("\n")
    sms = (
        _template(kind, "sms")
        .substitute({**values, "resource": clean(resource_name, limit=_SMS_RESOURCE_CHARACTERS)})
        .strip()
    )
    return RenderedMessage(subject=subject.strip(), body=body.lstrip("\n"), sms=sms[:SMS_LIMIT])
