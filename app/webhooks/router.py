"""HTTP routes of webhook subscriptions (admin): translation to and from the service, nothing more."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Path, Request, Response, status

import app.webhooks.consumer  # noqa: F401 - registers the consumer and the retry task where the app runs
from app.auth.deps import require
from app.auth.policy import Capability
from app.auth.service import Principal
from app.concurrency import Versions, etag
from app.deps import IF_MATCH_OPTIONAL, PageParams, domain_router, route_path
from app.errors import FieldCode, ProblemType
from app.openapi import error_responses, invalid
from app.webhooks.deps import WebhookServiceDep
from app.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPage,
    WebhookSecret,
    WebhookUpdate,
)

router = domain_router(prefix="/webhooks", tags=["webhooks"])

Manager = Annotated[Principal, Depends(require(Capability.WEBHOOKS_MANAGE))]
WebhookId = Annotated[
    str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", examples=["3f2c9a7e5b8d4c1fa0e6b9d2c4f8a1e7"])
]
DeliveryId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
OptionalVersions = Annotated[Versions | None, Depends(IF_MATCH_OPTIONAL)]
BAD_ID = invalid(("path.webhook_id", FieldCode.PATTERN_MISMATCH))


@router.post(
    "",
    operation_id="webhooks_create",
    summary="Subscribe a URL to event types; the signing secret is in this answer only",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        ProblemType.CONFLICT,
        invalid(("body.url", FieldCode.UNSAFE_URL), ("body.event_types", FieldCode.INVALID_CHOICE)),
    ),
)
def create_webhook(
    body: WebhookCreate, principal: Manager, service: WebhookServiceDep, request: Request, response: Response
) -> WebhookCreated:
    subscription, secret = service.create(principal.username, body)
    response.headers["Location"] = route_path(request, "webhooks_get", webhook_id=subscription.id)
    response.headers["ETag"] = etag(subscription.version)
    response.headers["Cache-Control"] = "no-store"  # it carries the secret
    return WebhookCreated(**WebhookOut.of(subscription).model_dump(), secret=secret)


@router.get(
    "",
    operation_id="webhooks_list",
    summary="List webhook subscriptions, ordered by id",
    response_model=WebhookPage,
    responses=error_responses(ProblemType.INVALID_CURSOR, invalid(("query.limit", FieldCode.TOO_LARGE))),
)
def list_webhooks(_: Manager, service: WebhookServiceDep, paging: PageParams) -> WebhookPage:
    return WebhookPage.of(service.list(limit=paging.limit, cursor=paging.cursor), WebhookOut.of)


@router.get(
    "/{webhook_id}",
    operation_id="webhooks_get",
    summary="One webhook subscription (never its secret); its version is also the ETag",
    response_model=WebhookOut,
    responses=error_responses(ProblemType.NOT_FOUND, BAD_ID),
)
def get_webhook(webhook_id: WebhookId, _: Manager, service: WebhookServiceDep, response: Response) -> WebhookOut:
    subscription = service.get(webhook_id)
    response.headers["ETag"] = etag(subscription.version)
    return WebhookOut.of(subscription)


@router.patch(
    "/{webhook_id}",
    operation_id="webhooks_update",
    summary="Change a webhook subscription; `active: true` re-enables a disabled one",
    response_model=WebhookOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        invalid(
            ("body.url", FieldCode.UNSAFE_URL),
            ("body.active", FieldCode.NULL_NOT_ALLOWED),
            ("path.webhook_id", FieldCode.PATTERN_MISMATCH),
        ),
    ),
)
def update_webhook(
    webhook_id: WebhookId,
    body: WebhookUpdate,
    principal: Manager,
    service: WebhookServiceDep,
    response: Response,
    versions: OptionalVersions,
) -> WebhookOut:
    subscription = service.update(principal.username, webhook_id, body, expected_versions=versions)
    response.headers["ETag"] = etag(subscription.version)
    return WebhookOut.of(subscription)


@router.delete(
    "/{webhook_id}",
    operation_id="webhooks_delete",
    summary="Delete a webhook subscription and its delivery log",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(ProblemType.NOT_FOUND, BAD_ID),
)
def delete_webhook(
    webhook_id: WebhookId, principal: Manager, service: WebhookServiceDep, versions: OptionalVersions
) -> Response:
    service.delete(principal.username, webhook_id, expected_versions=versions)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    operation_id="webhooks_rotate_secret",
    summary="Replace the signing secret; the new one is in this answer only, the old one stops at once",
    response_model=WebhookSecret,
    responses=error_responses(ProblemType.NOT_FOUND, BAD_ID),
)
def rotate_secret(
    webhook_id: WebhookId, principal: Manager, service: WebhookServiceDep, response: Response
) -> WebhookSecret:
    subscription, secret = service.rotate_secret(principal.username, webhook_id)
    response.headers["ETag"] = etag(subscription.version)
    response.headers["Cache-Control"] = "no-store"
    return WebhookSecret(id=subscription.id, secret=secret)


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="webhooks_deliveries",
    summary="The delivery log, newest first: status, attempts, the receiver's last answer, the next attempt",
    response_model=DeliveryPage,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.INVALID_CURSOR,
        invalid(("query.limit", FieldCode.TOO_LARGE), ("path.webhook_id", FieldCode.PATTERN_MISMATCH)),
    ),
)
def list_deliveries(webhook_id: WebhookId, _: Manager, service: WebhookServiceDep, paging: PageParams) -> DeliveryPage:
    return DeliveryPage.of(service.deliveries(webhook_id, limit=paging.limit, cursor=paging.cursor), DeliveryOut.of)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    operation_id="webhooks_retry_delivery",
    summary="Start a delivery over: pending, a full retry schedule, tried at once (409 while the webhook is disabled)",
    response_model=DeliveryOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.CONFLICT,
        invalid(("path.webhook_id", FieldCode.PATTERN_MISMATCH), ("path.delivery_id", FieldCode.PATTERN_MISMATCH)),
    ),
)
def retry_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, _: Manager, service: WebhookServiceDep
) -> DeliveryOut:
    return DeliveryOut.of(service.retry(webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/ping",
    operation_id="webhooks_ping",
    summary="Send a signed `webhook.ping` now and answer how the receiver took it (one attempt, no retries)",
    response_model=DeliveryOut,
    responses=error_responses(ProblemType.NOT_FOUND, BAD_ID),
)
def ping_webhook(webhook_id: WebhookId, principal: Manager, service: WebhookServiceDep) -> DeliveryOut:
    return DeliveryOut.of(service.ping(principal.username, webhook_id))
