"""Who may do what: capabilities per role, declared once and enforced by one dependency."""

from __future__ import annotations

from enum import StrEnum

from app.storage.records import Role


class Capability(StrEnum):
    SUBSCRIBERS_READ = "subscribers:read"
    SUBSCRIBERS_WRITE = "subscribers:write"
    SUBSCRIBERS_UNMASKED = "subscribers:unmasked"
    BOOKINGS_READ = "bookings:read"
    BOOKINGS_WRITE = "bookings:write"
    RESOURCES_WRITE = "resources:write"
    JOBS_READ = "jobs:read"
    JOBS_RUN = "jobs:run"
    JOBS_ADMIN = "jobs:admin"
    USERS_ADMIN = "users:admin"
    AUDIT_READ = "audit:read"
    DASHBOARD_READ = "dashboard:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


_VIEWER = {
    Capability.SUBSCRIBERS_READ,
    Capability.BOOKINGS_READ,
    Capability.JOBS_READ,
    Capability.DASHBOARD_READ,
}
_OPERATOR = _VIEWER | {
    Capability.SUBSCRIBERS_WRITE,
    Capability.SUBSCRIBERS_UNMASKED,
    Capability.BOOKINGS_WRITE,
    Capability.RESOURCES_WRITE,
    Capability.JOBS_RUN,
}
ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(Capability),
}


def allows(role: Role, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES[role]
