"""Dependencies of the bookings routes, including the one seam to the subscribers domain.

`get_subscriber_status` answers "what is this subscriber's status?" (`ACTIVE`, `SUSPENDED`, ...,
or None if there is no such subscriber). The subscribers domain lives on another branch; when it is
merged, this function returns a lookup over its service (e.g. `store.subscribers.get(uid).status`).
Until then no subscriber is known here, so every booking is refused with `unknown_subscriber`:
the API fails closed rather than booking for subscribers it cannot check. Tests provide
subscribers through `tests.bookings.conftest.add_subscriber`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.bookings.service import BookingService, SubscriberStatusLookup
from app.deps import RuntimeDep


def no_known_subscriber(subscriber_uid: str) -> str | None:
    return None


def get_subscriber_status(runtime: RuntimeDep) -> SubscriberStatusLookup:
    return no_known_subscriber


def get_booking_service(
    runtime: RuntimeDep, subscriber_status: Annotated[SubscriberStatusLookup, Depends(get_subscriber_status)]
) -> BookingService:
    return BookingService(runtime.store, runtime.settings, subscriber_status)


BookingServiceDep = Annotated[BookingService, Depends(get_booking_service)]
