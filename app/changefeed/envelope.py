"""An event as it leaves the product (bus entry detail, webhook body): masked for its consumer.

Stored events hold unmasked values; each consumer is granted a role, and the subscriber values
in `data` are masked exactly as that role would see them through the API.
"""

from __future__ import annotations

from typing import Any

from app.auth.policy import Capability, allows
from app.changefeed.catalog import SUBSCRIBER_VALUED_KEYS
from app.storage.records import DomainEvent, Role
from app.subscribers.schemas import masked_unless


def envelope(event: DomainEvent, role: Role) -> dict[str, Any]:
    """`{id, type, timestamp, subject, actor, request_id, data_version, data}` as `role` may see it."""
    unmasked = allows(role, Capability.SUBSCRIBERS_UNMASKED)
    data = dict(event.data)
    for name in SUBSCRIBER_VALUED_KEYS:
        if isinstance(data.get(name), dict):
            data[name] = masked_unless(data[name], unmasked=unmasked)
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.at.isoformat().replace("+00:00", "Z"),
        "subject": event.subject,
        "actor": event.actor,
        "request_id": event.request_id,
        "data_version": event.data_version,
        "data": data,
    }
