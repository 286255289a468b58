"""The masking rule (imsi, iccid and email masked for callers without `subscribers:unmasked`) holds
on every path that carries subscriber data: responses, history, audit, exports, error reports."""

from __future__ import annotations

import csv
import io
import itertools
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.auth.policy import ROLE_CAPABILITIES, Capability
from app.storage.records import Role
from tests.subscribers.support import body, iccid, imsi

HEADER = b"uid,msisdn,imsi,iccid,email,first_name,last_name,plan"


def created(client: TestClient, headers: dict[str, str], job: dict[str, Any], content: bytes | None = None) -> str:
    response = client.post("/migration/jobs", json=job, headers=headers)
    assert response.status_code == 201, response.text
    job_id = str(response.json()["job"]["id"])
    if content is not None:
        sent = client.put(f"/migration/jobs/{job_id}/input", content=content, headers=headers)
        assert sent.status_code == 200, sent.text
    return job_id


def seed(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Subscriber data on every path: a subscriber changed twice, one deleted, an import whose
    error report names an existing subscriber's imsi and email, exports masked and not."""
    assert client.post("/subscribers", json=body(1), headers=headers).status_code == 201
    changed = {"imsi": imsi(11), "email": "changed1@example.com", "iccid": iccid(11)}
    patched = client.patch("/subscribers/sub-0001", json=changed, headers={**headers, "If-Match": '"1"'})
    assert patched.status_code == 200, patched.text
    assert client.post("/subscribers", json=body(2), headers=headers).status_code == 201
    assert client.delete("/subscribers/sub-0002", headers=headers).status_code == 204
    rows = [
        # exists: the imsi of sub-0001 (and its email in the row)
        f"new-1,+447911100901,{imsi(11)},{iccid(901)},changed1@example.com,A,B,GOLD",
        # invalid email of someone, and an iccid that fails its check digit
        f"new-2,+447911100902,{imsi(902)},{iccid(902)[:-1]}0,someone@@example.com,A,B,GOLD",
    ]
    content = b"\r\n".join([HEADER, *(line.encode() for line in rows)]) + b"\r\n"
    import_id = created(client, headers, {"type": "import", "format": "csv"}, content)
    exports = [
        created(client, headers, {"type": "export", "format": kind, "mask": mask})
        for kind, mask in itertools.product(("csv", "ndjson"), (False, True))
    ]
    secrets = [imsi(1), imsi(11), imsi(2), iccid(1), iccid(11), iccid(2), iccid(902)[:-1] + "0"]
    secrets += ["person1@example.com", "changed1@example.com", "person2@example.com", "someone@@example.com"]
    return {"jobs": [import_id, *exports], "import": import_id, "exports": exports, "secrets": secrets}


def get_requests(app: FastAPI, seeded: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Every GET route of the app with real ids and the query variants that change what it returns."""
    values = {
        "uid": ["sub-0001", "sub-0002"],
        "job_id": seeded["jobs"],
        "username": ["operator-user"],
        "resource_id": ["none"],
        "booking_id": ["none"],
        "webhook_id": ["none"],
    }
    queries: dict[str, list[dict[str, str]]] = {
        "/migration/jobs/{job_id}/errors": [{}, {"format": "csv"}],
        "/subscribers/search": [{"imsi": imsi(11)}, {"email": "changed1@example.com"}, {"uid_prefix": "sub"}],
        "/audit": [{}, {"entity_type": "subscriber", "entity_id": "sub-0001"}],
    }
    requests = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or "GET" not in route.methods or route.path.startswith(("/docs", "/redoc")):
            continue
        names = re.findall(r"\{([^}]+)\}", route.path)
        for combination in itertools.product(*(values[name] for name in names)):
            path = route.path
            for name, value in zip(names, combination, strict=True):
                path = path.replace(f"{{{name}}}", value)
            for query in queries.get(route.path, [{}]):
                requests.append((path, query))
    return requests


Request = tuple[str, tuple[tuple[str, str], ...]]


def leaks(
    client: TestClient, requests: list[tuple[str, dict[str, str]]], headers: dict[str, str], secrets: list[str]
) -> tuple[dict[Request, list[str]], dict[Request, int]]:
    """(what each request showed of `secrets`, each request's status)."""
    found: dict[Request, list[str]] = {}
    answered: dict[Request, int] = {}
    for path, query in requests:
        response = client.get(path, params=query, headers=headers, follow_redirects=False)
        answered[(path, tuple(query.items()))] = response.status_code
        text = response.content.decode("utf-8", "replace")
        shown = [secret for secret in secrets if secret in text]
        if shown:
            found[(path, tuple(query.items()))] = shown
    return found, answered


def test_no_path_shows_a_viewer_unmasked_subscriber_data(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    seeded = seed(client, role_headers["operator"])
    requests = get_requests(app, seeded)
    found, answered = leaks(client, requests, role_headers["viewer"], seeded["secrets"])
    assert found == {}
    # The walk reached the data, masked: the subscriber, its history, the jobs.
    assert answered[("/subscribers/sub-0001", ())] == 200
    assert answered[("/subscribers/sub-0002/history", ())] == 200
    viewer = role_headers["viewer"]
    history = client.get("/subscribers/sub-0001/history", headers=viewer).json()["items"]
    assert history[0]["before"]["imsi"] == "234150******001"
    assert history[0]["after"]["email"] == "c***@example.com"
    # ... and the operator who ran the jobs does see the data (the check above can fail).
    found, _ = leaks(client, requests, role_headers["operator"], seeded["secrets"])
    assert found


def test_masking_follows_the_capability_not_the_role(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment where operators run jobs but see personal data masked, and viewers read the audit log."""
    operator = role_headers["operator"]
    unmasked_export = created(client, operator, {"type": "export", "format": "csv"})  # while operators may
    with monkeypatch.context() as changed:
        changed.setitem(
            ROLE_CAPABILITIES, Role.OPERATOR, ROLE_CAPABILITIES[Role.OPERATOR] - {Capability.SUBSCRIBERS_UNMASKED}
        )
        changed.setitem(ROLE_CAPABILITIES, Role.VIEWER, ROLE_CAPABILITIES[Role.VIEWER] | {Capability.AUDIT_READ})
        seeded = seed(client, operator)
        found, answered = leaks(client, get_requests(app, seeded), operator, seeded["secrets"])
        assert found == {}
        assert answered[(f"/migration/jobs/{seeded['exports'][0]}/output", ())] == 200
        export = client.get(f"/migration/jobs/{seeded['exports'][0]}", headers=operator).json()
        assert export["options"]["mask"] is True  # written masked: its creator may not see more
        rows = list(
            csv.DictReader(io.StringIO(client.get(f"/migration/jobs/{export['id']}/output", headers=operator).text))
        )
        assert rows[0]["imsi"] == "234150******011"
        refused = client.get(f"/migration/jobs/{unmasked_export}/output", headers=operator)
        assert refused.status_code == 403, refused.text
        assert "subscribers:unmasked" in refused.json()["detail"]

        errors = client.get(f"/migration/jobs/{seeded['import']}/errors", headers=operator).json()["items"]
        by_field = {error["field"]: error["value"] for error in errors}
        assert by_field["imsi"] == "234150******011"
        assert by_field["email"] == "s***@@example.com"
        report = client.get(f"/migration/jobs/{seeded['import']}/errors", params={"format": "csv"}, headers=operator)
        assert "234150******011" in report.text

        viewer = role_headers["viewer"]
        audit = client.get(
            "/audit", params={"entity_type": "subscriber", "entity_id": "sub-0001"}, headers=viewer
        ).json()["items"]
        assert audit[0]["after"]["imsi"] == "234150******011"
        assert audit[-1]["after"]["email"] == "p***@example.com"
        found, _ = leaks(client, get_requests(app, seeded), viewer, seeded["secrets"])
        assert found == {}
    # Admins still see everything.
    admin_errors = client.get(f"/migration/jobs/{seeded['import']}/errors", headers=role_headers["admin"]).json()
    assert imsi(11) in [error["value"] for error in admin_errors["items"]]
