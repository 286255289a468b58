"""Store-to-store copy, DynamoDB (moto) <-> MongoDB (mongomock) both ways, plus a MongoDB server over
the wire (tests/conftest.py): every kind of record arrives byte for byte, the target then behaves as the
source did (logins, revoked tokens, uniqueness, seats, overlaps, idempotent retries), and the copy
resumes, repeats, refuses clashes and notices tampering."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.main import create_app
from app.migration import store_copy
from app.migration.worker import InlineDispatcher
from app.notifications.service import NotificationService, Outcome
from app.notifications.transport import FileTransport
from app.storage.base import ConditionFailed, StorageError, Store
from app.storage.blobs import LocalBlobStore
from app.storage.cursor import CursorCodec
from app.storage.records import AuditEntry, Role
from app.storage.transfer import KINDS
from app.timeutil import utcnow
from app.webhooks.deps import SENDER
from tests.bookings.conftest import add_subscriber
from tests.bookings.test_bookings_api import at, resource_body
from tests.conftest import dynamo_store, mongo_store
from tests.migration.test_subscriber_jobs import csv_file, row, run_job
from tests.notifications.conftest import event_of
from tests.support import make_settings
from tests.webhooks.support import RecordingSender

PASSWORD = "copy-password-0123"
LOGIN_THROTTLE = "populating signs in, and the login throttle's window is an upsert with $setOnInsert"
DIRECTIONS = [("dynamodb", "mongo"), ("mongo", "dynamodb"), ("dynamodb", "mongo-real"), ("mongo-real", "dynamodb")]


def open_store(stack: ExitStack, backend: str, cursors: CursorCodec) -> Store:
    stores = dynamo_store(cursors) if backend == "dynamodb" else mongo_store(cursors, real=backend == "mongo-real")
    store = next(stores)
    stack.callback(lambda: next(stores, None))
    return store


@pytest.fixture(params=DIRECTIONS, ids=["->".join(pair) for pair in DIRECTIONS])
def stores(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[tuple[Store, Store]]:
    with ExitStack() as stack:
        yield open_store(stack, request.param[0], cursors), open_store(stack, request.param[1], cursors)


def portal(store: Store, tmp_path: Path) -> TestClient:
    app = create_app(make_settings(), store)
    app.state.runtime.provide("blobs", LocalBlobStore(tmp_path / "files"))
    app.state.runtime.provide("job_dispatcher", InlineDispatcher(app.state.runtime))
    return TestClient(app, raise_server_exceptions=False)


def login(client: TestClient, username: str) -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def populate(store: Store, tmp_path: Path) -> dict[str, Any]:
    """Every kind of record, made the way the portal makes them: through its API and services."""
    client = portal(store, tmp_path)
    with client:
        app = client.app
        service = auth_service_of(app.state.runtime)  # type: ignore[attr-defined]
        for role in Role:
            service.create_user("test", UserCreate(username=f"{role.value}-user", password=PASSWORD, role=role))
        first = login(client, "admin-user")
        refreshed = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        admin = bearer(refreshed.json())
        gone = login(client, "operator-user")
        assert client.post("/auth/logout", headers=bearer(gone)).status_code == 204

        for n in range(6):
            add_subscriber(app, f"sub-{n}")  # type: ignore[arg-type]
        current = client.get("/subscribers/sub-4", headers=admin)
        changed = client.patch(
            "/subscribers/sub-4", json={"plan": "GOLD"}, headers={**admin, "If-Match": current.headers["ETag"]}
        )
        assert changed.status_code == 200, changed.text
        current = client.get("/subscribers/sub-5", headers=admin)
        deleted = client.delete("/subscribers/sub-5", headers={**admin, "If-Match": current.headers["ETag"]})
        assert deleted.status_code == 204, deleted.text

        resource = client.post("/bookings/resources", json=resource_body(capacity=1), headers=admin).json()["id"]
        kept = {"resource_id": resource, "subscriber_uid": "sub-0", "start": at(10)}
        first_booking = client.post("/bookings", json=kept, headers={**admin, "Idempotency-Key": "retry-1"})
        assert first_booking.status_code == 201, first_booking.text
        for uid, hour in (("sub-1", 11), ("sub-2", 12)):
            made = client.post("/bookings", json={**kept, "subscriber_uid": uid, "start": at(hour)}, headers=admin)
            assert made.status_code == 201, made.text
        cancelled = client.post(f"/bookings/{made.json()['id']}/cancel", json={"reason": "moved"}, headers=admin)
        assert cancelled.status_code == 200, cancelled.text

        job = run_job(client, admin, csv_file(row(50), row(51, status="GONE")), mode="create")
        assert job["status"] == "COMPLETED_WITH_ERRORS", job

        # The kept booking's confirmation (a message claim) and its reminder timer.
        booking = store.bookings.get(first_booking.json()["id"])
        assert booking is not None
        messages = NotificationService(store, make_settings(), FileTransport(tmp_path / "messages"), utcnow)
        assert messages.handle_event(event_of("booking.create", None, booking)) is Outcome.SENT
        assert store.reminders.get(booking.id) is not None
        app.state.runtime.provide(SENDER, RecordingSender())  # type: ignore[attr-defined]
        body = {"url": "https://93.184.215.14/hooks", "event_types": ["booking.confirmed"]}
        webhook = client.post("/webhooks", json=body, headers=admin)
        assert webhook.status_code == 201, webhook.text
        pinged = client.post(f"/webhooks/{webhook.json()['id']}/ping", headers=admin)
        assert pinged.status_code == 200, pinged.text
    return {
        "first_refresh": first["refresh_token"],
        "refresh": refreshed.json()["refresh_token"],
        "revoked_access": gone["access_token"],
        "resource": resource,
        "kept": kept,
        "kept_id": first_booking.json()["id"],
        "job": job["id"],
        "webhook": webhook.json()["id"],
    }


def copy_all(source: Store, target: Store, state_path: Path, *, batch_size: int = 7) -> store_copy.CopyState:
    state = store_copy.CopyState("source", "target")
    store_copy.copy(source.transfer, target.transfer, state, state_path, batch_size=batch_size, progress=no_progress)
    return state


def no_progress(step: str, records: int) -> None:
    return None


def verified(source: Store, target: Store) -> store_copy.Verification:
    return store_copy.verify(source.transfer, target.transfer, batch_size=5, progress=no_progress)


@pytest.mark.needs_mongodb_server(LOGIN_THROTTLE, variant="mongo-real")
def test_every_kind_arrives_and_the_target_behaves_like_the_source(stores: tuple[Store, Store], tmp_path: Path) -> None:
    source, target = stores
    seeded = populate(source, tmp_path)
    state = copy_all(source, target, tmp_path / "state.json")

    assert state.copy_done
    verification = verified(source, target)
    assert verification.ok, verification.differences
    assert verification.differences == []
    empty = [check.kind for check in verification.checks if check.source_count == 0]
    assert empty == [], f"the seed data should hold every kind: {empty}"
    assert store_copy.read_refused(tmp_path / "state.json") == []

    # The records as the target's repositories read them are the source's.
    for username in ("admin-user", "operator-user", "viewer-user"):
        assert target.users.get(username) == source.users.get(username)
    assert target.users.count_active_admins() == source.users.count_active_admins() == 1
    assert target.subscribers.list(limit=50).items == source.subscribers.list(limit=50).items
    assert target.subscribers.get("sub-5") is None
    assert target.bookings.get(seeded["kept_id"]) == source.bookings.get(seeded["kept_id"])
    assert target.jobs.get(seeded["job"]) == source.jobs.get(seeded["job"])
    assert target.jobs.list_errors(seeded["job"], limit=10) == source.jobs.list_errors(seeded["job"], limit=10)
    for scope in ("subscribers.status", "subscribers.plan", "bookings.day", "jobs.status", "users"):
        assert target.counters.get(scope) == source.counters.get(scope), scope
    assert target.webhooks.get(seeded["webhook"]) == source.webhooks.get(seeded["webhook"])
    deliveries = target.webhooks.list_deliveries(seeded["webhook"], limit=5)
    assert deliveries == source.webhooks.list_deliveries(seeded["webhook"], limit=5)
    assert len(deliveries.items) == 1
    history = target.audit.list_for_entity("subscriber", "sub-5", limit=10).items
    assert [entry.action for entry in history] == ["subscriber.delete", "subscriber.create"]

    with portal(target, tmp_path) as client:
        admin = bearer(login(client, "admin-user"))  # the password hash came along
        revoked = client.get("/auth/me", headers={"Authorization": f"Bearer {seeded['revoked_access']}"})
        assert revoked.status_code == 401  # logged out on the source: still refused
        # The session came along: its live refresh token rotates, the used one is a replay.
        assert client.post("/auth/refresh", json={"refresh_token": seeded["refresh"]}).status_code == 200
        assert client.post("/auth/refresh", json={"refresh_token": seeded["first_refresh"]}).status_code == 401

        taken = source.subscribers.get("sub-0")
        assert taken is not None
        clash = {"uid": "new-1", "msisdn": taken.msisdn, "imsi": "234159999999999", "first_name": "A"}
        clash |= {"last_name": "B", "status": "ACTIVE", "plan": "BASIC"}
        assert client.post("/subscribers", json=clash, headers=admin).status_code == 409

        # The slot's only seat is held; another resource at the same time overlaps sub-1's booking.
        retry = client.post("/bookings", json=seeded["kept"], headers={**admin, "Idempotency-Key": "retry-1"})
        assert retry.json()["id"] == seeded["kept_id"], retry.text
        full = {**seeded["kept"], "subscriber_uid": "sub-3"}
        assert client.post("/bookings", json=full, headers=admin).status_code == 409
        assert client.post(f"/bookings/{seeded['kept_id']}/cancel", json={}, headers=admin).status_code == 200
        assert client.post("/bookings", json=full, headers=admin).status_code == 201  # the seat was freed
        other = client.post("/bookings/resources", json=resource_body(), headers=admin).json()["id"]
        busy = {"resource_id": other, "subscriber_uid": "sub-1", "start": at(11)}
        assert client.post("/bookings", json=busy, headers=admin).status_code == 409


@pytest.mark.needs_mongodb_server(LOGIN_THROTTLE, variant="mongo-real->")
def test_an_interrupted_copy_resumes_from_its_state_file(stores: tuple[Store, Store], tmp_path: Path) -> None:
    source, target = stores
    populate(source, tmp_path)
    state_path = tmp_path / "state.json"
    batches = 0

    def crash_after_four(step: str, records: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 4:
            raise KeyboardInterrupt

    state = store_copy.CopyState("source", "target")
    with pytest.raises(KeyboardInterrupt):
        store_copy.copy(source.transfer, target.transfer, state, state_path, batch_size=5, progress=crash_after_four)

    saved = store_copy.CopyState.load(state_path)
    assert saved is not None
    assert not saved.copy_done
    assert saved.position is not None
    assert 0 < sum(saved.written.values()) < sum(c.source_count for c in verified(source, target).checks)
    assert not verified(source, target).ok  # a part is missing

    store_copy.copy(source.transfer, target.transfer, saved, state_path, batch_size=5, progress=no_progress)
    assert saved.copy_done
    assert store_copy.CopyState.load(state_path) == saved
    verification = verified(source, target)
    assert verification.ok, verification.differences


@pytest.mark.needs_mongodb_server(LOGIN_THROTTLE, variant="mongo-real->")
def test_copying_again_changes_nothing_and_follows_source_changes(stores: tuple[Store, Store], tmp_path: Path) -> None:
    source, target = stores
    populate(source, tmp_path)
    copy_all(source, target, tmp_path / "one.json")
    copy_all(source, target, tmp_path / "two.json", batch_size=3)
    verification = verified(source, target)
    assert verification.ok, verification.differences

    # The source moved on (a new number for sub-0); copying again releases the old number in the target.
    current = source.subscribers.get("sub-0")
    assert current is not None
    moved = current.model_copy(update={"msisdn": "+447911999999", "version": current.version + 1})
    source.subscribers.replace(current, moved, audit_entry("sub-0"))
    copy_all(source, target, tmp_path / "three.json")
    assert verified(source, target).ok
    assert target.subscribers.get_by_msisdn(current.msisdn) is None
    assert target.subscribers.get_by_msisdn("+447911999999") == moved
    reused = current.model_copy(update={"uid": "sub-new", "imsi": "234150000009999"})
    target.subscribers.create(reused, audit_entry("sub-new"))  # the old number is free in the target


def audit_entry(uid: str) -> AuditEntry:
    return AuditEntry(
        id=f"audit-{uid}-{utcnow().timestamp()}", at=utcnow(), actor="test", action="subscriber.update",
        entity_type="subscriber", entity_id=uid,
    )  # fmt: skip


@pytest.mark.needs_mongodb_server(LOGIN_THROTTLE, variant="mongo-real->")
def test_a_clash_in_the_target_is_refused_and_reported(stores: tuple[Store, Store], tmp_path: Path) -> None:
    source, target = stores
    populate(source, tmp_path)
    taken = source.subscribers.get("sub-0")
    assert taken is not None
    squatter = taken.model_copy(update={"uid": "squatter", "imsi": "234150000007777"})
    target.subscribers.create(squatter, audit_entry("squatter"))

    state_path = tmp_path / "state.json"
    copy_all(source, target, state_path)

    refused = store_copy.read_refused(state_path)
    assert [(item.kind, item.key) for item in refused] == [("subscribers", ("sub-0",))]
    assert target.subscribers.get("squatter") == squatter  # never overwritten
    assert target.subscribers.get("sub-0") is None
    verification = verified(source, target)
    assert not verification.ok
    assert "subscribers sub-0: missing from the target" in verification.differences
    assert "subscribers: 1 record(s) only in the target" in verification.differences


@pytest.mark.needs_mongodb_server(LOGIN_THROTTLE, variant="mongo-real->")
def test_verification_names_a_record_changed_after_the_copy(stores: tuple[Store, Store], tmp_path: Path) -> None:
    source, target = stores
    populate(source, tmp_path)
    copy_all(source, target, tmp_path / "state.json")
    current = target.subscribers.get("sub-2")
    assert current is not None
    target.subscribers.replace(
        current,
        current.model_copy(update={"first_name": "Changed", "version": current.version + 1}),
        audit_entry("sub-2"),
    )
    verification = verified(source, target)
    wrong = {check.kind for check in verification.checks if not check.ok}
    assert wrong == {"subscribers", "audit"}  # the change wrote an audit entry too
    assert "subscribers sub-2: differs in the target" in verification.differences
    assert "audit: 1 record(s) only in the target" in verification.differences


def test_an_unknown_dynamodb_item_stops_the_copy(cursors: CursorCodec, tmp_path: Path) -> None:
    with ExitStack() as stack:
        source, target = open_store(stack, "dynamodb", cursors), open_store(stack, "mongo", cursors)
        source.table.put({"PK": "GADGET#1", "SK": "GADGET", "colour": "blue"})  # type: ignore[attr-defined]
        with pytest.raises(StorageError, match="GADGET#1"):
            copy_all(source, target, tmp_path / "state.json")


def test_a_subscriber_clash_refuses_only_that_subscriber(cursors: CursorCodec, tmp_path: Path) -> None:
    """DynamoDB writes subscribers in transactions of many: one clash must not refuse its neighbours."""
    with ExitStack() as stack:
        source, target = open_store(stack, "mongo", cursors), open_store(stack, "dynamodb", cursors)
        populate(source, tmp_path)
        taken = source.subscribers.get("sub-3")
        assert taken is not None
        target.subscribers.create(taken.model_copy(update={"uid": "squatter"}), audit_entry("squatter"))
        copy_all(source, target, tmp_path / "state.json", batch_size=100)
        assert [item.key for item in store_copy.read_refused(tmp_path / "state.json")] == [("sub-3",)]
        assert {s.uid for s in target.subscribers.list(limit=50).items} == {
            "sub-0", "sub-1", "sub-2", "sub-4", "s0050", "squatter"
        }  # fmt: skip
        with pytest.raises(ConditionFailed):
            target.subscribers.create(taken, audit_entry("sub-3"))


def test_every_kind_is_in_one_phase() -> None:
    assert len(KINDS) == len(set(KINDS)) == 19
