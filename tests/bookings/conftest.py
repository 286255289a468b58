"""Subscribers for booking tests come from ONE helper, `add_subscriber`.

The subscribers domain is built on another branch. Here the helper feeds the bookings seam
(`app.bookings.deps.get_subscriber_status`) directly; at merge it is re-implemented over the real
subscribers service, and every booking test keeps working unchanged.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.bookings.deps import get_subscriber_status


def add_subscriber(app: FastAPI, uid: str, status: str = "ACTIVE") -> None:
    directory: dict[str, str] | None = getattr(app.state, "test_subscribers", None)
    if directory is None:
        directory = {}
        app.state.test_subscribers = directory
        known = directory
        app.dependency_overrides[get_subscriber_status] = lambda: known.get
    directory[uid] = status
