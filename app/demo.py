"""Local demo data: seeded into an empty store when APP_ENV=local (never elsewhere: see Settings).

Three users (admin, operator, viewer) sharing one password, a handful of subscribers, a bookable
store and a few bookings, all created through the services, so every rule and audit entry applies.
"""

from __future__ import annotations

import logging
import secrets
import sys
from datetime import timedelta

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.bookings.schemas import BookingCreate, ResourceCreate
from app.bookings.service import BookingService
from app.errors import ConflictError
from app.runtime import Runtime
from app.storage.records import Role
from app.subscribers.schemas import parse_subscriber
from app.subscribers.service import SubscriberService
from app.timeutil import utcnow

logger = logging.getLogger("app.demo")
DEMO_ACTOR = "demo-seed"

SUBSCRIBERS = [
    ("demo-0001", "+447911123401", "234150000000401", "Ada", "Lovelace", "ACTIVE", "GOLD"),
    ("demo-0002", "+447911123402", "234150000000402", "Alan", "Turing", "ACTIVE", "SILVER"),
    ("demo-0003", "+447911123403", "234150000000403", "Grace", "Hopper", "ACTIVE", "GOLD"),
    ("demo-0004", "+447911123404", "234150000000404", "Edsger", "Dijkstra", "SUSPENDED", "BASIC"),
    ("demo-0005", "+447911123405", "234150000000405", "Barbara", "Liskov", "INACTIVE", "BASIC"),
]
OPENING = [{"open": "09:00", "close": "17:30"}]


def seed_demo_data(runtime: Runtime) -> None:
    store = runtime.store
    if store.users.get("admin") is not None:
        return
    password = _seed_users(runtime)
    if password is None:
        return  # another process (a second uvicorn worker) claimed the store first and seeds it
    subscribers = SubscriberService(store, runtime.settings)
    for uid, msisdn, imsi, first, last, status, plan in SUBSCRIBERS:
        row = {
            "uid": uid,
            "msisdn": msisdn,
            "imsi": imsi,
            "first_name": first,
            "last_name": last,
            "status": status,
            "plan": plan,
            "email": f"{first.lower()}@demo.example",
            "attributes": {"segment": "demo"},
        }
        subscribers.create(DEMO_ACTOR, parse_subscriber(row, phone_region=runtime.settings.default_phone_region))
    bookings = BookingService(store, runtime.settings, subscribers.status_of)
    resource = bookings.create_resource(
        DEMO_ACTOR,
        ResourceCreate(
            name="Demo high-street store",
            kind="store",
            timezone="Europe/London",
            slot_minutes=30,
            capacity=2,
            weekly_schedule={day: OPENING for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
        ),
    )
    tomorrow = utcnow() + timedelta(days=1)
    _, slots = bookings.availability(resource.id, tomorrow, 7)
    open_slots = [slot.slot.start for slot in slots if slot.remaining > 0]
    for uid, start in zip(("demo-0001", "demo-0002", "demo-0003"), open_slots[::5], strict=False):
        bookings.create_booking(
            DEMO_ACTOR, BookingCreate(resource_id=resource.id, subscriber_uid=uid, start=start), None
        )
    logger.info("seeded demo data", extra={"users": 3, "subscribers": len(SUBSCRIBERS), "resource": resource.id})
    if runtime.settings.demo_admin_password is None:
        # Printed once, to the terminal of the developer who started the server; never logged.
        print(
            f"\n  Demo users admin / operator / viewer, password: {password}\n"
            "  Shown only now. Set DEMO_ADMIN_PASSWORD to choose it, or delete the data folder to re-seed.\n",
            file=sys.stderr,
            flush=True,
        )


def _seed_users(runtime: Runtime) -> str | None:
    """The demo users' password, or None when another process created `admin` first.

    Creating `admin` is a conditional write (it fails if the user exists): it is the claim that
    makes exactly one of the processes starting on an empty store seed it.
    """
    auth = auth_service_of(runtime)
    configured = runtime.settings.demo_admin_password
    password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
    for username, role in (("admin", Role.ADMIN), ("operator", Role.OPERATOR), ("viewer", Role.VIEWER)):
        request = UserCreate(username=username, password=password, role=role, full_name=f"Demo {username}")
        try:
            auth.create_user(DEMO_ACTOR, request)
        except ConflictError:  # the username is taken
            if username == "admin":
                return None
            raise
    return password
