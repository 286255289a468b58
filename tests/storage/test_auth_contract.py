"""Contract tests for users and sessions, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.audit import audit_entry
from app.storage.base import ConditionFailed, RecordMissing, StaleVersion, Store, ValueTaken
from app.storage.records import AuditEntry, RefreshTokenRecord, Role, TokenFamilyRecord, UserRecord
from app.timeutil import utcnow
from tests.support import race


def make_user(username: str, role: Role = Role.OPERATOR, **overrides: object) -> UserRecord:
    now = utcnow()
    values: dict[str, object] = {
        "username": username,
        "user_id": f"id-of-{username}",
        "role": role,
        "password_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "created_at": now,
        "updated_at": now,
        "password_changed_at": now,
        "email": f"{username}@example.com",
    }
    values.update(overrides)
    return UserRecord.model_validate(values)


def audit_for(user: UserRecord, action: str = "user.update") -> object:
    return audit_entry(
        actor="tester", action=action, entity_type="user", entity_id=user.username, at=utcnow(), retention_days=30
    )


def test_create_get_round_trip_and_duplicate(store: Store) -> None:
    user = make_user("alice")
    store.users.create(user, audit_for(user, "user.create"))  # type: ignore[arg-type]
    assert store.users.get("alice") == user
    assert store.users.get("nobody") is None
    with pytest.raises(ValueTaken) as caught:
        store.users.create(make_user("alice"), audit_for(user, "user.create"))  # type: ignore[arg-type]
    assert caught.value.attribute == "username"
    history = store.audit.list_for_entity("user", "alice", limit=10).items
    assert [entry.action for entry in history] == ["user.create"]


def test_list_is_ordered_by_username_and_paginated(store: Store) -> None:
    for name in ["carol", "alice", "dave", "bob", "erin"]:
        user = make_user(name)
        store.users.create(user, audit_for(user))  # type: ignore[arg-type]
    first = store.users.list(limit=2)
    second = store.users.list(limit=2, cursor=first.next_cursor)
    third = store.users.list(limit=2, cursor=second.next_cursor)
    assert [u.username for u in first.items + second.items + third.items] == ["alice", "bob", "carol", "dave", "erin"]
    assert third.next_cursor is None


def test_replace_checks_version_and_writes_audit(store: Store) -> None:
    user = make_user("alice")
    store.users.create(user, audit_for(user))  # type: ignore[arg-type]
    updated = user.model_copy(update={"full_name": "Alice A."})
    store.users.replace(user, updated, audit_for(user))  # type: ignore[arg-type]
    stored = store.users.get("alice")
    assert stored is not None
    assert stored.full_name == "Alice A."
    assert stored.version == 2
    with pytest.raises(StaleVersion):
        store.users.replace(user, user.model_copy(update={"full_name": "stale"}), audit_for(user))  # type: ignore[arg-type]
    assert store.users.get("alice").full_name == "Alice A."  # type: ignore[union-attr]
    assert len(store.audit.list_for_entity("user", "alice", limit=10).items) == 2


def test_delete_and_missing(store: Store) -> None:
    user = make_user("alice")
    store.users.create(user, audit_for(user))  # type: ignore[arg-type]
    store.users.delete(user, audit_for(user, "user.delete"))  # type: ignore[arg-type]
    assert store.users.get("alice") is None
    with pytest.raises(RecordMissing):
        store.users.delete(user, audit_for(user, "user.delete"))  # type: ignore[arg-type]
    assert store.users.list(limit=10).items == []
    actions = [entry.action for entry in store.audit.list_for_entity("user", "alice", limit=10).items]
    assert actions == ["user.delete", "user.update"]


def test_last_active_admin_cannot_be_demoted_disabled_or_deleted(store: Store) -> None:
    admin = make_user("root", Role.ADMIN)
    store.users.create(admin, audit_for(admin))  # type: ignore[arg-type]
    assert store.users.count_active_admins() == 1
    for change in ({"role": Role.OPERATOR}, {"active": False}):
        with pytest.raises(ConditionFailed):
            store.users.replace(admin, admin.model_copy(update=change), audit_for(admin))  # type: ignore[arg-type]
    with pytest.raises(ConditionFailed):
        store.users.delete(admin, audit_for(admin))  # type: ignore[arg-type]
    assert store.users.get("root") == admin
    assert store.users.count_active_admins() == 1

    second = make_user("second", Role.ADMIN)
    store.users.create(second, audit_for(second))  # type: ignore[arg-type]
    assert store.users.count_active_admins() == 2
    store.users.replace(admin, admin.model_copy(update={"active": False}), audit_for(admin))  # type: ignore[arg-type]
    assert store.users.count_active_admins() == 1


def test_concurrent_demotions_leave_one_admin(store: Store) -> None:
    admins = [make_user(f"admin{i}", Role.ADMIN) for i in range(4)]
    for admin in admins:
        store.users.create(admin, audit_for(admin))  # type: ignore[arg-type]

    def demote(index: int) -> None:
        admin = admins[index]
        store.users.replace(admin, admin.model_copy(update={"role": Role.VIEWER}), audit_for(admin))  # type: ignore[arg-type]

    outcomes = race(len(admins), demote, refusals=(ConditionFailed,))
    assert sorted("ok" if outcome is None else "conflict" for outcome in outcomes) == ["conflict", "ok", "ok", "ok"]
    remaining = [u for u in store.users.list(limit=10).items if u.is_active_admin]
    assert len(remaining) == 1
    assert store.users.count_active_admins() == 1


def test_login_failures_lock_and_success_resets(store: Store) -> None:
    user = make_user("alice")
    store.users.create(user, audit_for(user))  # type: ignore[arg-type]
    lock_until = utcnow() + timedelta(minutes=15)

    def lock_audit() -> AuditEntry:
        return audit_entry(
            actor="alice",
            action="auth.locked",
            entity_type="user",
            entity_id="alice",
            at=utcnow(),
            retention_days=30,
            after={"locked_until": lock_until.isoformat()},
        )

    for expected in (1, 2):
        after = store.users.record_login_failure(
            "alice", max_failures=3, lock_until=lock_until, lock_audit=lock_audit()
        )
        assert after is not None
        assert after.failed_logins == expected
        assert after.locked_until is None
    assert store.events.list_for_subject("user/alice", limit=10) == []  # no lock, no event
    locked = store.users.record_login_failure("alice", max_failures=3, lock_until=lock_until, lock_audit=lock_audit())
    assert locked is not None
    assert locked.locked_until == lock_until
    events = store.events.list_for_subject("user/alice", limit=10)
    assert [(event.type, event.data["locked_until"]) for event in events] == [("user.locked", lock_until.isoformat())]
    ghost = store.users.record_login_failure("ghost", max_failures=3, lock_until=lock_until, lock_audit=lock_audit())
    assert ghost is None
    store.users.record_login_success("alice", new_password_hash="$argon2id$new")
    stored = store.users.get("alice")
    assert stored is not None
    assert (stored.failed_logins, stored.locked_until, stored.password_hash) == (0, None, "$argon2id$new")
    assert stored.version == user.version  # bookkeeping does not change the version (ETag)


def _session(
    store: Store, family_id: str = "fam1", token_hash: str = "h1", username: str = "alice"
) -> tuple[TokenFamilyRecord, RefreshTokenRecord]:
    now = utcnow()
    family = TokenFamilyRecord(
        family_id=family_id,
        username=username,
        user_id=f"id-of-{username}",
        token_generation=0,
        created_at=now,
        expires_at=now + timedelta(days=7),
    )
    token = RefreshTokenRecord(
        token_hash=token_hash, family_id=family_id, username=username, issued_at=now, expires_at=now + timedelta(days=7)
    )
    store.sessions.start(family, token)
    return family, token


def _successor(token: RefreshTokenRecord, token_hash: str) -> RefreshTokenRecord:
    return token.model_copy(update={"token_hash": token_hash, "issued_at": utcnow()})


def test_refresh_rotation_and_reuse_detection(store: Store) -> None:
    family, token = _session(store)
    assert store.sessions.find_token("h1") == token
    assert store.sessions.get_family("fam1") == family
    rotated_family = store.sessions.rotate("h1", _successor(token, "h2"), now=utcnow())
    assert rotated_family.revoked is False
    assert store.sessions.find_token("h1").used_at is not None  # type: ignore[union-attr]
    # Replaying the used token revokes the whole family, including the fresh successor's.
    with pytest.raises(ConditionFailed):
        store.sessions.rotate("h1", _successor(token, "h3"), now=utcnow())
    assert store.sessions.get_family("fam1").revoked is True  # type: ignore[union-attr]
    with pytest.raises(ConditionFailed):
        store.sessions.rotate("h2", _successor(token, "h4"), now=utcnow())
    assert store.sessions.find_token("h3") is None
    assert store.sessions.find_token("h4") is None


def test_rotate_unknown_or_expired_token(store: Store) -> None:
    _, token = _session(store)
    with pytest.raises(RecordMissing):
        store.sessions.rotate("nope", _successor(token, "h2"), now=utcnow())
    with pytest.raises(RecordMissing):
        store.sessions.rotate("h1", _successor(token, "h2"), now=utcnow() + timedelta(days=8))


def test_concurrent_rotation_of_one_token_has_one_winner(store: Store) -> None:
    _, token = _session(store)

    def rotate(index: int) -> None:
        store.sessions.rotate("h1", _successor(token, f"next{index}"), now=utcnow())

    outcomes = race(8, rotate, refusals=(ConditionFailed, RecordMissing))
    assert outcomes.count(None) == 1


def test_revoked_family_refuses_rotation(store: Store) -> None:
    _, token = _session(store)
    store.sessions.revoke_family("fam1")
    with pytest.raises(ConditionFailed):
        store.sessions.rotate("h1", _successor(token, "h2"), now=utcnow())
    store.sessions.revoke_family("unknown-family")  # no error


def test_session_deny_list(store: Store) -> None:
    assert store.sessions.is_session_denied("fam1") is False
    store.sessions.deny_session("fam1", utcnow() + timedelta(minutes=15))
    store.sessions.deny_session("fam1", utcnow() + timedelta(minutes=15))  # idempotent
    assert store.sessions.is_session_denied("fam1") is True
    assert store.sessions.is_session_denied("fam2") is False


def test_delete_for_user_removes_their_families_and_tokens_only(store: Store) -> None:
    _, first = _session(store, "fam1", "h1")
    store.sessions.rotate("h1", _successor(first, "h2"), now=utcnow())
    _session(store, "fam2", "h3")
    _session(store, "fam3", "h4", username="bob")
    store.sessions.delete_for_user("alice")
    for token_hash in ("h1", "h2", "h3"):
        assert store.sessions.find_token(token_hash) is None
    assert store.sessions.get_family("fam1") is None
    assert store.sessions.get_family("fam2") is None
    assert store.sessions.find_token("h4") is not None
    assert store.sessions.get_family("fam3") is not None
    store.sessions.delete_for_user("nobody")  # no error


def test_users_stored_before_user_ids_get_a_stable_one() -> None:
    values = make_user("alice").model_dump(mode="json", exclude={"user_id"})
    first, again = UserRecord.model_validate(values), UserRecord.model_validate(dict(values))
    assert first.user_id == again.user_id
    later = UserRecord.model_validate({**values, "created_at": utcnow().isoformat()})
    assert later.user_id != first.user_id  # a later user of the same name is another user
