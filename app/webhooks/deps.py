"""Dependencies of the webhooks routes: the service, built from the process's sender and clock."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends

from app.deps import RuntimeDep
from app.runtime import Runtime
from app.timeutil import utcnow
from app.webhooks.service import WebhookService

# Runtime.memo names: a test provides a recording sender or a movable clock under them.
SENDER = "webhooks.sender"
CLOCK = "webhooks.clock"


def _http_sender(runtime: Runtime) -> object:
    from app.webhooks.transport import HttpSender

    return HttpSender(ca_bundle=runtime.settings.webhook_ca_bundle)


def webhook_service_of(runtime: Runtime) -> WebhookService:
    """The service as the routes, the event consumer and the retry task use it."""
    return WebhookService(
        runtime.store,
        runtime.settings,
        runtime.signing_secret,
        sender=runtime.memo(SENDER, lambda: _http_sender(runtime)),  # type: ignore[arg-type]
        clock=runtime.memo(CLOCK, lambda: utcnow),
    )


async def get_webhook_service(runtime: RuntimeDep) -> WebhookService:
    return webhook_service_of(runtime)


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]
