"""Subscriber rules: creation, optimistic-concurrency updates (If-Match), search and history.

Storage calls go through `store.subscribers` and `store.audit`; each write hands the repository
its audit entry, which the store writes in the same atomic step as the change. The bookings domain
is asked through its service (`BookingService.has_future_confirmed`), and asks this one back for a
subscriber's status (`status_of`); every delete, the API's and the bulk jobs', comes through here.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from app.audit import audit_entry
from app.bookings.service import BookingService
from app.concurrency import Versions, etag
from app.config import Settings
from app.errors import (
    ConflictError,
    FieldCode,
    FieldError,
    InvalidInput,
    NotFoundError,
    PreconditionFailedError,
    code_of,
    field_conflict,
)
from app.storage.base import CounterDrift, Page, StaleVersion, Store, ValueTaken
from app.storage.records import SUBSCRIBER_BOOKKEEPING, AuditEntry, SubscriberRecord, SubscriberStatus
from app.subscribers.fields import UID_PATTERN, normalise_attributes, normalise_email, normalise_imsi, normalise_msisdn
from app.subscribers.schemas import NOT_NULLABLE, SubscriberIn, SubscriberPatch, SubscriberReplace, validation_context
from app.timeutil import utcnow

ENTITY = "subscriber"
SearchField = Literal["msisdn", "imsi", "email", "uid_prefix"]
# An unconditional delete re-reads and retries when a concurrent change bumps the version.
_DELETE_ATTEMPTS = 3


def _check_version(subscriber: SubscriberRecord, versions: Versions | None) -> None:
    if versions is not None and subscriber.version not in versions:
        raise PreconditionFailedError(
            f"subscriber {subscriber.uid!r} is at version {subscriber.version}; reload it and retry",
            headers={"ETag": etag(subscriber.version)},
        )


class SubscriberService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.bookings = BookingService(store, settings, self.status_of)

    @property
    def validation_context(self) -> dict[str, Any]:
        return validation_context(self.settings.default_phone_region)

    # --- reads ---------------------------------------------------------------------------------------

    def get(self, uid: str) -> SubscriberRecord:
        subscriber = self.store.subscribers.get(uid)
        if subscriber is None:
            raise NotFoundError(f"subscriber {uid!r} not found")
        return subscriber

    def status_of(self, uid: str) -> str | None:
        """The subscriber's status (`ACTIVE`, `SUSPENDED`, ...), or None if there is no such subscriber:
        what the bookings domain asks before it books."""
        subscriber = self.store.subscribers.get(uid)
        return subscriber.status.value if subscriber else None

    def list(
        self, *, status: SubscriberStatus | None, plan: str | None, limit: int, cursor: str | None
    ) -> Page[SubscriberRecord]:
        return self.store.subscribers.list(status=status, plan=plan, limit=limit, cursor=cursor)

    def search(
        self, criteria: dict[SearchField, str | None], *, limit: int, cursor: str | None
    ) -> Page[SubscriberRecord]:
        """By exactly one of msisdn, imsi, email or uid prefix; each one is an index lookup."""
        given = {name: value for name, value in criteria.items() if value is not None}
        if len(given) != 1:
            raise InvalidInput(
                "query", "give exactly one of msisdn, imsi, email or uid_prefix", code=FieldCode.EXACTLY_ONE_REQUIRED
            )
        ((name, raw),) = given.items()
        repository = self.store.subscribers
        if name == "uid_prefix":
            if not UID_PATTERN.fullmatch(raw):
                raise InvalidInput(
                    "query.uid_prefix", "1-64 characters: letters, digits, '_' or '-'", code=FieldCode.INVALID_UID
                )
            return repository.find_by_uid_prefix(raw, limit=limit, cursor=cursor)
        if name == "email":
            return repository.find_by_email(_query_value("email", raw, normalise_email), limit=limit, cursor=cursor)
        if name == "msisdn":
            region = self.settings.default_phone_region
            found = repository.get_by_msisdn(_query_value("msisdn", raw, lambda value: normalise_msisdn(value, region)))
        else:
            found = repository.get_by_imsi(_query_value("imsi", raw, normalise_imsi))
        return Page([found] if found else [])

    def history(self, uid: str, *, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """Newest first; kept after a delete (until the audit retention ends)."""
        return self.store.audit.list_for_entity(ENTITY, uid, limit=limit, cursor=cursor)

    # --- writes --------------------------------------------------------------------------------------

    def create(self, actor: str, data: SubscriberIn) -> SubscriberRecord:
        now = utcnow()
        subscriber = SubscriberRecord(
            uid=data.uid or uuid.uuid4().hex,
            **data.stored_fields(),
            created_at=now,
            updated_at=now,
            created_by=actor,
            updated_by=actor,
        )
        try:
            self.store.subscribers.create(subscriber, self._audit(actor, "subscriber.create", now, None, subscriber))
        except ValueTaken as taken:
            raise _already_exists(taken) from None
        return subscriber

    def replace(self, actor: str, uid: str, data: SubscriberReplace, versions: Versions) -> SubscriberRecord:
        """PUT: every mutable field from `data`, if the subscriber is at one of `versions` (If-Match)."""
        _check_uid(uid, data.uid)
        current = self.get(uid)
        _check_version(current, versions)
        return self._update(actor, current, data.stored_fields())

    def patch(self, actor: str, uid: str, patch: SubscriberPatch, versions: Versions) -> SubscriberRecord:
        """PATCH with JSON merge patch semantics (RFC 7396), if the subscriber is at one of `versions`."""
        changes = patch.model_dump(exclude_unset=True)
        _check_uid(uid, changes.pop("uid", None))
        for name in NOT_NULLABLE:
            if name in changes and changes[name] is None:
                raise InvalidInput(f"body.{name}", "may not be null", code=FieldCode.NULL_NOT_ALLOWED)
        current = self.get(uid)
        _check_version(current, versions)
        if "attributes" in changes:
            attribute_changes = changes["attributes"]
            # `"attributes": null` clears them all; otherwise a null value removes one key.
            merged = {} if attribute_changes is None else dict(current.attributes)
            for key, value in (attribute_changes or {}).items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            try:
                changes["attributes"] = normalise_attributes(merged)
            except ValueError as exc:
                raise InvalidInput("body.attributes", str(exc), code=code_of(exc)) from None
        return self._update(actor, current, changes)

    def _update(self, actor: str, current: SubscriberRecord, changes: dict[str, Any]) -> SubscriberRecord:
        candidate = current.model_copy(update=changes)
        if candidate == current:
            return current  # nothing changes: no write, no version bump, no history entry
        now = _time_after(current)
        updated = SubscriberRecord.model_validate(
            {**candidate.model_dump(), "updated_at": now, "updated_by": actor, "version": current.version + 1}
        )
        audit = self._audit(actor, "subscriber.update", now, current, updated)
        try:
            self.store.subscribers.replace(current, updated, audit)
        except ValueTaken as taken:  # the new msisdn or imsi
            raise _already_exists(taken) from None
        return updated

    def delete(self, actor: str, uid: str, versions: Versions | None) -> None:
        """Frees the msisdn and imsi. If-Match is optional (`versions` None); when given it must match.
        Refused (409, `has_bookings`) while the subscriber has future confirmed bookings."""
        if self.bookings.has_future_confirmed(uid):
            raise ConflictError(
                "the subscriber has future confirmed bookings; cancel them first",
                errors=[
                    FieldError(field="path.uid", message="has future confirmed bookings", code=FieldCode.HAS_BOOKINGS)
                ],
            )
        for attempt in range(_DELETE_ATTEMPTS):
            current = self.get(uid)
            _check_version(current, versions)
            try:
                audit = self._audit(actor, "subscriber.delete", _time_after(current), current, None)
                self.store.subscribers.delete(current, audit)
                return
            except StaleVersion:
                if versions is not None or attempt == _DELETE_ATTEMPTS - 1:
                    raise

    def _audit(
        self,
        actor: str,
        action: str,
        at: datetime,
        before: SubscriberRecord | None,
        after: SubscriberRecord | None,
    ) -> AuditEntry:
        subject = after or before
        assert subject is not None
        return audit_entry(
            actor=actor,
            action=action,
            entity_type=ENTITY,
            entity_id=subject.uid,
            at=at,
            retention_days=self.settings.audit_retention_days,
            event_retention_days=self.settings.event_retention_days,
            before=before.model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING)) if before else None,
            after=after.model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING)) if after else None,
        )

    # --- maintenance ---------------------------------------------------------------------------------

    def reconcile_counters(self, *, fix: bool) -> builtins.list[CounterDrift]:
        return self.store.subscribers.reconcile_counters(fix=fix)


def _time_after(current: SubscriberRecord) -> datetime:
    """Now, but at least 1 ms after the subscriber's last change: history is ordered by time, and
    two changes in one millisecond (or a clock step back) must still come out in order."""
    return max(utcnow(), current.updated_at + timedelta(milliseconds=1))


def _already_exists(taken: ValueTaken) -> ConflictError:
    """A unique value of the body (uid, msisdn, imsi) that another subscriber holds."""
    return field_conflict(f"body.{taken.attribute}", str(taken), FieldCode.ALREADY_EXISTS)


def _check_uid(path_uid: str, body_uid: str | None) -> None:
    # 409, as RFC 9110 (9.3.4) has it for a PUT body inconsistent with its target: the body alone is fine.
    if body_uid is not None and body_uid != path_uid:
        raise field_conflict("body.uid", "the uid can't be changed; it must match the path", FieldCode.UID_IMMUTABLE)


def _query_value(name: str, raw: str, normalise: Callable[[str], str]) -> str:
    try:
        return normalise(raw)
    except ValueError as exc:
        raise InvalidInput(f"query.{name}", str(exc), code=code_of(exc)) from None
