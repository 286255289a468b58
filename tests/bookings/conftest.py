"""Subscribers for booking tests come from ONE helper, `add_subscriber`, over the real service."""

from __future__ import annotations

from fastapi import FastAPI

from app.subscribers.schemas import parse_subscriber
from app.subscribers.service import SubscriberService


def add_subscriber(app: FastAPI, uid: str, status: str = "ACTIVE") -> None:
    """A valid subscriber with its own msisdn and imsi (numbered per app), stored through the service."""
    runtime = app.state.runtime
    number = getattr(app.state, "test_subscriber_count", 0) + 1
    app.state.test_subscriber_count = number
    data = {
        "uid": uid,
        "msisdn": f"+44791112{number:04d}",
        "imsi": f"23415{number:010d}",
        "first_name": "Test",
        "last_name": f"Subscriber {number}",
        "status": status,
        "plan": "BASIC",
    }
    subscriber = parse_subscriber(data, phone_region=runtime.settings.default_phone_region)
    SubscriberService(runtime.store, runtime.settings).create("test", subscriber)
