"""A mapping's keys are chosen by users (CSV headers, source values): whatever they hold, the job
stores, runs and audits them unchanged, on every backend, a MongoDB server over the wire included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.migration.mapping import MappingSpec, mapping_of
from app.storage.base import Store
from app.storage.cursor import CursorCodec
from app.storage.records import Role
from app.timeutil import utcnow
from tests.conftest import ENGINE_BACKENDS, backend_store
from tests.migration.test_subscriber_jobs import run_job

# Dots and dollars where MongoDB gives them meaning (paths, operators), an empty source value, unicode.
MAPPING: dict[str, Any] = {
    "columns": {
        "id": "uid",
        "$msisdn": "msisdn",
        "sim.imsi": "imsi",
        "e.mail": "email",
        "$": "first_name",
        "Nom de famille ☎": "last_name",
        "tariff.$plan": "plan",
        "state": "status",
    },
    "transforms": {
        "status": [{"map": {"$a": "ACTIVE", "s.x": "SUSPENDED", "": "INACTIVE", ".": "INACTIVE", "ü": "ACTIVE"}}]
    },
    "unmapped": "reject",
}
CSV = (
    "id,$msisdn,sim.imsi,e.mail,$,Nom de famille ☎,tariff.$plan,state\r\n"
    "s1,+447911100001,234150000000001,ann@example.com,Ann,Ölund,GOLD,$a\r\n"
    "s2,+447911100002,234150000000002,bo@example.com,Bo,Bé,BASIC,s.x\r\n"
    "s3,+447911100003,234150000000003,cy@example.com,Cy,Çe,BASIC,ü\r\n"
).encode()


@pytest.fixture(params=[*ENGINE_BACKENDS, "mongo-real"])
def store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    yield from backend_store(request, cursors)


@pytest.fixture
def admin(app: FastAPI) -> dict[str, str]:
    """An admin's token, issued without signing in: the login throttle meets a gap of the wire stand-in."""
    service = auth_service_of(app.state.runtime)
    user = service.create_user("test", UserCreate(username="root", password="correct-horse-battery", role=Role.ADMIN))
    token, _ = service.signer.issue_access(
        username=user.username,
        user_id=user.user_id,
        role=user.role,
        generation=user.token_generation,
        family_id="test-session",
        now=utcnow(),
    )
    return {"Authorization": f"Bearer {token}"}


def test_mapping_keys_with_dots_dollars_empty_and_unicode_round_trip(
    client: TestClient, admin: dict[str, str], store: Store
) -> None:
    given = MappingSpec.model_validate(MAPPING)
    job = run_job(client, admin, CSV, mapping=MAPPING)
    assert job["status"] == "COMPLETED", job
    assert job["options"]["mapping"] == given.model_dump(mode="json")
    stored = store.jobs.get(job["id"])
    assert stored is not None
    assert mapping_of(stored.options["mapping"]) == given
    subscribers = [store.subscribers.get(uid) for uid in ("s1", "s2", "s3")]
    assert [(s.email, s.first_name, s.last_name, s.plan, s.status.value) for s in subscribers if s] == [
        ("ann@example.com", "Ann", "Ölund", "GOLD", "ACTIVE"),
        ("bo@example.com", "Bo", "Bé", "BASIC", "SUSPENDED"),
        ("cy@example.com", "Cy", "Çe", "BASIC", "ACTIVE"),
    ]
    audit = client.get("/audit", params={"entity_type": "job", "entity_id": job["id"]}, headers=admin).json()
    assert [mapping_of(entry["after"]["options"]["mapping"]) for entry in audit["items"]] == [given]
