"""Every rule that relies on an item expiring holds whenever the store's TTL deleter gets to it.

A MongoDB server deletes a TTL'd document about a minute after its `expires_at`, later under load;
DynamoDB deletes an item up to days after its `ttl`; mongomock and the wire stand-in never do. So
each rule is checked twice on every backend: with the expired item still stored (late deletion:
reads must compare the expiry themselves), and with it removed by `sweep_expired` as soon as the
deleter may remove it. docs/data-model.md lists what each TTL expires.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from app.audit import audit_entry
from app.auth.jose_hmac import jwt as jose_jwt
from app.auth.schemas import UserCreate
from app.auth.security import LEEWAY_SECONDS, InvalidToken, PasswordHasher, TokenSigner, new_refresh_token
from app.auth.service import AuthService
from app.errors import Unauthorized
from app.storage.base import AuditQuery, IdempotencyKey, RecordMissing, Store
from app.storage.records import BookingStatus, RefreshTokenRecord, Role, TokenFamilyRecord
from app.timeutil import truncate_ms, utcnow
from tests.storage.test_bookings_contract import add_resource, at, audit, book, make_booking
from tests.support import TEST_SECRET, make_settings

EARLY_OR_LATE = pytest.mark.parametrize("deleted_early", [False, True], ids=["deleted-late", "deleted-early"])


def sweep_expired(store: Store, as_of: datetime) -> None:
    """Delete what the store's TTL deleter may delete at `as_of` at the earliest: every item whose
    expiry lies before that instant (DynamoDB: `ttl`, epoch seconds; MongoDB: the TTL indexes)."""
    table = getattr(store, "table", None)
    if table is not None:
        scan = {
            "TableName": table.name,
            "FilterExpression": "#ttl < :as_of",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            # An integer ttl lies before `as_of` exactly when it lies before as_of rounded up.
            "ExpressionAttributeValues": {":as_of": {"N": str(math.ceil(as_of.timestamp()))}},
            "ProjectionExpression": "PK, SK",
        }
        while True:
            response = table.call("scan", **scan)
            table.batch_write(deletes=[(item["PK"]["S"], item["SK"]["S"]) for item in response.get("Items", [])])
            if "LastEvaluatedKey" not in response:
                return
            scan["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    from app.storage.mongo.database import INDEXES

    db = store.db  # type: ignore[attr-defined]
    for collection, indexes in INDEXES.items():
        for index in indexes:
            if "expireAfterSeconds" in index.document:
                (field,) = index.document["key"]
                expire_after = timedelta(seconds=index.document["expireAfterSeconds"])
                db[collection].delete_many({field: {"$lt": as_of - expire_after}})


# --- the deny-list of ended sessions ----------------------------------------------------------------


def set_token_clock(monkeypatch: pytest.MonkeyPatch, instant: datetime) -> None:
    """Set the clock python-jose checks `exp` against to `instant`."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(instant.timestamp(), tz)

    monkeypatch.setattr(jose_jwt, "datetime", Frozen)


def auth_service(store: Store) -> AuthService:
    settings = make_settings()
    return AuthService(store, settings, lambda: PasswordHasher(settings), TokenSigner(settings, TEST_SECRET.encode()))


def test_a_deny_entry_outlives_every_access_token_of_its_session(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    service = auth_service(store)
    user = service.create_user("test", UserCreate(username="olga", password="correct-horse-battery", role=Role.ADMIN))
    token, claims = service.signer.issue_access(
        username=user.username,
        user_id=user.user_id,
        role=user.role,
        generation=user.token_generation,
        family_id="session-1",
        now=utcnow(),
    )
    service.logout(service.authenticate(token), None)

    # python-jose accepts the token while its clock, in whole seconds, is at most exp + leeway.
    last_accepted = datetime.fromtimestamp(claims.expires_at + LEEWAY_SECONDS + 1, UTC) - timedelta(milliseconds=1)
    set_token_clock(monkeypatch, last_accepted)
    service.signer.verify_access(token)
    sweep_expired(store, last_accepted)
    with pytest.raises(Unauthorized):
        service.authenticate(token)
    # From the next instant the token itself is refused, deny entry or not (left late or deleted).
    set_token_clock(monkeypatch, last_accepted + timedelta(milliseconds=1))
    with pytest.raises(InvalidToken):
        service.signer.verify_access(token)


# --- refresh tokens and their sessions (families) ------------------------------------------------------


def start_session(store: Store, lifetime: timedelta) -> tuple[str, RefreshTokenRecord]:
    now = utcnow()
    raw, token_hash = new_refresh_token()
    family = TokenFamilyRecord(
        family_id="fam1", username="olga", user_id="u1", token_generation=0, created_at=now, expires_at=now + lifetime
    )
    token = RefreshTokenRecord(
        token_hash=token_hash, family_id="fam1", username="olga", issued_at=now, expires_at=now + lifetime
    )
    store.sessions.start(family, token)
    return raw, token


@EARLY_OR_LATE
def test_a_refresh_token_past_its_expiry_is_refused(store: Store, deleted_early: bool) -> None:
    service = auth_service(store)
    service.create_user("test", UserCreate(username="olga", password="correct-horse-battery", role=Role.ADMIN))
    raw, token = start_session(store, timedelta(seconds=-1))
    if deleted_early:
        sweep_expired(store, token.expires_at + timedelta(seconds=1))
        assert store.sessions.find_token(token.token_hash) is None
    with pytest.raises(Unauthorized):
        service.refresh(raw)


def test_a_session_lives_as_long_as_its_newest_refresh_token(store: Store) -> None:
    _, first = start_session(store, timedelta(hours=1))
    second = first.model_copy(update={"token_hash": "second", "expires_at": first.expires_at + timedelta(hours=1)})
    store.sessions.rotate(first.token_hash, second, now=utcnow())

    sweep_expired(store, first.expires_at + timedelta(seconds=1))
    assert store.sessions.find_token(first.token_hash) is None
    assert store.sessions.get_family("fam1") is not None
    third = second.model_copy(update={"token_hash": "third", "expires_at": second.expires_at + timedelta(hours=1)})
    store.sessions.rotate("second", third, now=first.expires_at + timedelta(seconds=1))

    # Late: the expired token, still stored, is refused by its expiry.
    with pytest.raises(RecordMissing):
        store.sessions.rotate("third", third.model_copy(update={"token_hash": "x"}), now=third.expires_at)


# --- the login throttle's windows ----------------------------------------------------------------------


def test_a_throttle_window_counts_until_it_ends_and_never_after(store: Store) -> None:
    window = 60
    start = datetime.fromtimestamp(utcnow().timestamp() // window * window, UTC)
    assert [store.throttle.hit("k", window, now=start) for _ in range(3)] == [1, 2, 3]
    last_instant = start + timedelta(seconds=window) - timedelta(milliseconds=1)
    sweep_expired(store, last_instant)  # the earliest deleter leaves a running window alone
    assert store.throttle.hit("k", window, now=last_instant) == 4
    # Late: the old window, still stored, does not count into a later one.
    assert store.throttle.hit("k", window, now=start + timedelta(seconds=2 * window + 1)) == 1


# --- audit retention -----------------------------------------------------------------------------------


@EARLY_OR_LATE
def test_an_audit_entry_past_retention_is_never_listed(store: Store, deleted_early: bool) -> None:
    now = utcnow()
    old = audit_entry(
        actor="ann", action="x.update", entity_type="x", entity_id="1", at=now - timedelta(days=31), retention_days=30
    )
    kept = audit_entry(
        actor="ann", action="x.update", entity_type="x", entity_id="1", at=now - timedelta(days=1), retention_days=30
    )
    store.audit.append(old)
    store.audit.append(kept)
    if deleted_early:
        assert old.expires_at is not None
        sweep_expired(store, old.expires_at + timedelta(seconds=1))

    page = store.audit.list_for_entity("x", "1", limit=1)
    assert ([entry.id for entry in page.items], page.next_cursor) == ([kept.id], None)
    since = now - timedelta(days=40)
    for filters in ({}, {"actor": "ann"}, {"entity_type": "x", "entity_id": "1"}, {"entity_type": "x"}):
        found = store.audit.search(AuditQuery(since=since, until=now, **filters), limit=1)  # type: ignore[arg-type]
        assert ([entry.id for entry in found.items], found.next_cursor) == ([kept.id], None), filters


# --- Idempotency-Keys of bookings ----------------------------------------------------------------------


@EARLY_OR_LATE
def test_an_expired_idempotency_key_can_be_used_again(store: Store, deleted_early: bool) -> None:
    add_resource(store, capacity=5)
    now = utcnow()
    expired = IdempotencyKey(key="ann:k", request_hash="h1", expires_at=now - timedelta(seconds=1))
    first = make_booking("b1", at(10))
    book(store, first, expired)
    if deleted_early:
        sweep_expired(store, expired.expires_at + timedelta(seconds=1))
    assert store.bookings.find_idempotency("ann:k", now) is None
    again = IdempotencyKey(key="ann:k", request_hash="h2", expires_at=now + timedelta(hours=24))
    book(store, make_booking("b2", at(12)), again)
    stored = store.bookings.find_idempotency("ann:k", now)
    assert stored is not None
    assert (stored.request_hash, stored.booking_id) == ("h2", "b2")


# --- a subscriber's busy ledger of a day ---------------------------------------------------------------


@EARLY_OR_LATE
def test_a_booking_outlives_its_days_busy_ledger(store: Store, deleted_early: bool) -> None:
    """A day's ledger expires a week after the day; a booking of that day can still be cancelled."""
    add_resource(store, capacity=1)
    start = truncate_ms(utcnow() - timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    booking = make_booking("b1", start)
    book(store, booking)
    if deleted_early:
        sweep_expired(store, utcnow())
    stored = store.bookings.get("b1")
    assert stored is not None
    cancelled = stored.model_copy(update={"status": BookingStatus.CANCELLED, "updated_at": utcnow()})
    store.bookings.change_status(stored, cancelled, audit("booking", "b1", "booking.cancel"))
    assert store.bookings.get("b1").status is BookingStatus.CANCELLED  # type: ignore[union-attr]
    assert store.resources.seats_taken("res1", start, start + timedelta(hours=1)) == {}
