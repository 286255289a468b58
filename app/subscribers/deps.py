"""The subscribers service of a request."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends

from app.deps import SettingsDep, StoreDep
from app.subscribers.service import SubscriberService


async def get_subscriber_service(store: StoreDep, settings: SettingsDep) -> SubscriberService:
    return SubscriberService(store, settings)


SubscriberServiceDep = Annotated[SubscriberService, Depends(get_subscriber_service)]
