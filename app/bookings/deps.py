"""Dependencies of the bookings routes, including the one seam to the subscribers domain.

`get_subscriber_status` answers "what is this subscriber's status?" (`ACTIVE`, `SUSPENDED`, ...,
or None if there is no such subscriber): the subscribers service answers it.
"""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends

from app.bookings.service import BookingService, SubscriberStatusLookup
from app.deps import SettingsDep, StoreDep
from app.subscribers.deps import SubscriberServiceDep


async def get_subscriber_status(subscribers: SubscriberServiceDep) -> SubscriberStatusLookup:
    return subscribers.status_of


async def get_booking_service(
    store: StoreDep,
    settings: SettingsDep,
    subscriber_status: Annotated[SubscriberStatusLookup, Depends(get_subscriber_status)],
) -> BookingService:
    return BookingService(store, settings, subscriber_status)


BookingServiceDep = Annotated[BookingService, Depends(get_booking_service)]
