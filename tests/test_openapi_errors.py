"""The error contract: every documented error example agrees with the catalogue and the schema,
every problem the server can raise is in the catalogue, and each problem type (and a sample of the
documented field errors) comes back for real exactly as the document shows it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from app.auth.deps import auth_service_of
from app.errors import (
    PROBLEM_CONTENT_TYPE,
    DomainError,
    FieldCode,
    ProblemType,
    field_code,
    meaning_of,
)
from app.main import create_app
from app.openapi import build_openapi
from app.problem_responses import HTTP_STATUS_PROBLEMS
from app.storage.base import StorageError, Store, StoreUnavailable
from tests.bookings.conftest import add_subscriber
from tests.bookings.test_bookings_api import at, book, resource_body
from tests.conftest import ROLE_PASSWORD
from tests.subscribers.support import body as subscriber_body
from tests.support import make_settings

Document = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Document:
    return build_openapi(create_app(make_settings()))


def problem_validator(document: Document) -> jsonschema.Draft202012Validator:
    """The document's Problem schema, its references resolved within the document."""
    return jsonschema.Draft202012Validator({"$ref": "#/components/schemas/Problem", **document})


def operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def input_names(document: Document, operation: dict[str, Any]) -> set[str]:
    """Every `errors[].field` an operation's input can be named by (top-level body fields included)."""
    names = {"body", "query", "status"}  # the whole body, a cross-parameter rule, a booking's state
    for parameter in operation.get("parameters", []):
        names.add(f"{parameter['in']}.{parameter['name'].lower()}")
        if parameter.get("explode") and parameter.get("style") == "form":  # one query parameter per property
            schema = parameter["schema"]
            for branch in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
                names |= {f"query.{name}" for name in branch.get("properties", {})}
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        properties = dict(schema.get("properties", {}))
        components = document["components"]["schemas"]
        for option in [schema, *schema.get("anyOf", [])]:  # an optional body is `anyOf: [model, null]`
            if "$ref" in option:
                # A `oneOf`: one object per kind, which may itself be a `oneOf` (an import per target).
                pending = [option]
                while pending:
                    branch = pending.pop()
                    if "$ref" in branch:
                        branch = components[branch["$ref"].rsplit("/", 1)[1]]
                    properties |= branch.get("properties", {})
                    pending += branch.get("oneOf", [])
        prefix = "form" if media is operation["requestBody"]["content"].get("multipart/form-data") else "body"
        names |= {f"{prefix}.{name}" for name in properties}
        names |= {f"body.{name}" for name in properties if prefix == "form"}  # the file part
    return names


def example_faults(document: Document) -> list[str]:
    """Every way a documented error example disagrees with the catalogue, the schema or its operation."""
    validator = problem_validator(document)
    faults = []
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
        if takes_input and "422" not in operation["responses"]:
            faults.append(f"{where}: takes input but documents no 422")
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get(PROBLEM_CONTENT_TYPE)
            if int(status) < 400 or media is None:
                continue
            examples = media.get("examples") or {}
            if not examples:
                faults.append(f"{where} {status}: no example")
            for name, example in examples.items():
                value = example["value"]
                at = f"{where} {status} {name}"
                faults += [f"{at}: {error.message}" for error in validator.iter_errors(value)]
                kind = next((kind for kind in ProblemType if kind.uri == value.get("type")), None)
                if kind is None:
                    faults.append(f"{at}: type {value.get('type')!r} is not in the catalogue")
                    continue
                if (value["status"], kind.status) != (int(status), int(status)):
                    faults.append(f"{at}: status {value['status']}, catalogue {kind.status}, response {status}")
                if value["title"] != kind.title:
                    faults.append(f"{at}: title {value['title']!r}, catalogue {kind.title!r}")
                if kind is ProblemType.VALIDATION_ERROR and not value.get("errors"):
                    faults.append(f"{at}: a 422 example names no field")
                inputs = input_names(document, operation)
                for error in value.get("errors", []):
                    if error["field"] not in inputs:
                        faults.append(f"{at}: {error['field']} is not an input of the operation")
    return faults


def test_every_documented_error_example_matches_the_catalogue_and_its_operation(document: Document) -> None:
    assert example_faults(document) == []


def test_the_catalogues_are_components_and_problem_type_is_their_enum(document: Document) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ProblemType"]["enum"] == [kind.uri for kind in ProblemType]
    assert schemas["FieldCode"]["enum"] == [code.value for code in FieldCode]
    assert schemas["Problem"]["properties"]["type"]["$ref"] == "#/components/schemas/ProblemType"
    assert schemas["FieldError"]["properties"]["code"]["$ref"] == "#/components/schemas/FieldCode"
    for kind in ProblemType:  # the meaning of each, for people reading the document
        assert f"| `{kind.uri}` | {kind.status} | {kind.title} |" in schemas["ProblemType"]["description"]


def test_catalogue_entries_are_unique_and_in_one_style() -> None:
    assert len({kind.uri for kind in ProblemType}) == len(ProblemType)
    assert all(re.fullmatch(r"/problems/[a-z]+(-[a-z]+)*", kind.uri) for kind in ProblemType)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code.value) for code in FieldCode)
    assert all(kind.meaning and code.meaning for kind in ProblemType for code in FieldCode)


def test_the_conventions_page_lists_both_catalogues_as_the_code_has_them() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "api-conventions.md").read_text()
    problem_rows = re.findall(r"^\| `(/problems/[^`]+)` \| (\d+) \| ([^|]+?) \|", page, re.MULTILINE)
    assert problem_rows == [(kind.uri, str(kind.status), kind.title) for kind in ProblemType]
    codes_section = page.split("### Field-error codes", 1)[1].split("\n## ", 1)[0]
    code_rows = re.findall(r"^\| `([a-z_]+)` \| ", codes_section, re.MULTILINE)
    assert code_rows == [code.value for code in FieldCode]


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _import_every_error() -> None:
    """Every module that may define a domain or storage error: the app, every backend, the job engine."""
    import app.main  # noqa: F401 - the routers, their services and the storage base

    for package in ("app.storage", "app.migration"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            importlib.import_module(module.name)


def test_every_problem_the_server_can_raise_is_in_the_catalogue() -> None:
    _import_every_error()
    for error in _subclasses(DomainError):
        assert error.problem in ProblemType, error  # type: ignore[attr-defined]
    for error in _subclasses(StorageError):
        if error.__name__.startswith("_"):
            continue  # a repository's own signal, handled inside its module
        meaning = meaning_of(error.__new__(error))
        assert meaning is not None, f"{error.__module__}.{error.__name__} is not mapped"
        assert meaning.problem is not ProblemType.INTERNAL_ERROR
    # Only a storage error nobody expected is a 500; Starlette's own HTTP errors have their types.
    assert meaning_of(StorageError("x")) is None
    assert all(kind.status == status for status, kind in HTTP_STATUS_PROBLEMS.items())


def test_every_pydantic_error_type_has_a_code() -> None:
    from typing import get_args

    from pydantic_core.core_schema import ErrorType

    named = {error_type: field_code(error_type) for error_type in get_args(ErrorType)}
    assert set(named.values()) <= set(FieldCode)
    assert named["missing"] is FieldCode.MISSING
    assert named["int_parsing"] is FieldCode.INVALID_TYPE
    assert named["datetime_parsing"] is FieldCode.INVALID_DATETIME
    assert named["value_error"] is FieldCode.INVALID  # a rule with no code of its own (pydantic's email type)


# --- for real -------------------------------------------------------------------------------------------


@dataclass
class Caller:
    app: FastAPI
    client: TestClient
    headers: dict[str, dict[str, str]]

    def create_subscriber(self, n: int) -> str:
        response = self.client.post("/subscribers", json=subscriber_body(n), headers=self.headers["operator"])
        assert response.status_code == 201, response.text
        return str(response.json()["uid"])


@pytest.fixture
def caller(app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]]) -> Caller:
    return Caller(app, client, role_headers)


def _unavailable(*_: object, **__: object) -> None:
    raise StoreUnavailable("DynamoDB is unreachable")


def _broken(*_: object, **__: object) -> None:
    raise RuntimeError("a bug")


def _busy_login(caller: Caller) -> Response:
    hasher = auth_service_of(caller.app.state.runtime).hasher
    hasher._queue_seconds = 0
    taken = []
    while hasher._slots.acquire(blocking=False):
        taken.append(1)
    try:
        return caller.client.post("/auth/login", json={"username": "operator-user", "password": ROLE_PASSWORD})
    finally:
        for _ in taken:
            hasher._slots.release()


def _rate_limited(caller: Caller) -> Response:
    limit = caller.app.state.runtime.settings.login_rate_per_minute
    for _ in range(limit):
        caller.client.post("/auth/login", json={"username": "nobody", "password": "wrong password"})
    return caller.client.post("/auth/login", json={"username": "nobody", "password": "wrong password"})


def _store_patched(caller: Caller, replacement: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> Response:
    uid = caller.create_subscriber(9)
    store: Store = caller.app.state.runtime.store
    monkeypatch.setattr(store.subscribers, "get", replacement)
    return caller.client.get(f"/subscribers/{uid}", headers=caller.headers["operator"])


def _patch(caller: Caller, headers: dict[str, str]) -> Response:
    uid = caller.create_subscriber(8)
    headers = {**caller.headers["operator"], **headers}
    return caller.client.patch(f"/subscribers/{uid}", json={"plan": "BASIC"}, headers=headers)


def _twice(caller: Caller) -> Response:
    """A second subscriber with the first one's msisdn."""
    caller.create_subscriber(7)
    second = subscriber_body(17, msisdn=subscriber_body(7)["msisdn"])
    return caller.client.post("/subscribers", json=second, headers=caller.headers["operator"])


# (method, path template, request) per problem type; the request returns the response to compare.
Trigger = Callable[[Caller, pytest.MonkeyPatch], Response]
TRIGGERS: dict[ProblemType, tuple[str, str, Trigger]] = {
    ProblemType.BAD_REQUEST: (
        "post",
        "/auth/login",
        lambda c, _: c.client.post("/auth/login", content=b"x", headers={"content-type": "multipart/form-data"}),
    ),
    ProblemType.INVALID_CURSOR: (
        "get",
        "/subscribers",
        lambda c, _: c.client.get("/subscribers", params={"cursor": "e30." + "A" * 22}, headers=c.headers["viewer"]),
    ),
    ProblemType.UNAUTHORIZED: ("get", "/subscribers", lambda c, _: c.client.get("/subscribers")),
    ProblemType.FORBIDDEN: (
        "post",
        "/subscribers",
        lambda c, _: c.client.post("/subscribers", json=subscriber_body(1), headers=c.headers["viewer"]),
    ),
    ProblemType.NOT_FOUND: (
        "get",
        "/subscribers/{uid}",
        lambda c, _: c.client.get("/subscribers/nobody", headers=c.headers["viewer"]),
    ),
    ProblemType.METHOD_NOT_ALLOWED: ("", "", lambda c, _: c.client.delete("/health")),
    ProblemType.CONFLICT: ("post", "/subscribers", lambda c, _: _twice(c)),
    ProblemType.PRECONDITION_FAILED: ("patch", "/subscribers/{uid}", lambda c, _: _patch(c, {"If-Match": '"99"'})),
    ProblemType.PAYLOAD_TOO_LARGE: (
        "post",
        "/subscribers",
        lambda c, _: c.client.post(
            "/subscribers",
            content=b" " * 2_000_000,
            headers={**c.headers["operator"], "content-type": "application/json"},
        ),
    ),
    ProblemType.UNSUPPORTED_MEDIA_TYPE: (
        "post",
        "/subscribers",
        lambda c, _: c.client.post(
            "/subscribers", content=b"{}", headers={**c.headers["operator"], "content-type": "text/plain"}
        ),
    ),
    ProblemType.VALIDATION_ERROR: (
        "post",
        "/subscribers",
        lambda c, _: c.client.post(
            "/subscribers", json=subscriber_body(2, msisdn="+4479"), headers=c.headers["operator"]
        ),
    ),
    ProblemType.PRECONDITION_REQUIRED: ("patch", "/subscribers/{uid}", lambda c, _: _patch(c, {})),
    ProblemType.TOO_MANY_REQUESTS: ("post", "/auth/login", lambda c, _: _rate_limited(c)),
    ProblemType.INTERNAL_ERROR: ("", "", lambda c, m: _store_patched(c, _broken, m)),
    ProblemType.SERVICE_BUSY: ("post", "/auth/login", lambda c, _: _busy_login(c)),
    ProblemType.SERVICE_UNAVAILABLE: ("get", "/subscribers/{uid}", lambda c, m: _store_patched(c, _unavailable, m)),
}


def test_every_problem_type_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(ProblemType)


def documented_example(document: Document, method: str, path: str, status: int, uri: str) -> dict[str, Any]:
    response = document["paths"][path][method]["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {path} does not document {status}"
    examples = response["content"][PROBLEM_CONTENT_TYPE]["examples"].values()
    found = [example["value"] for example in examples if example["value"]["type"] == uri]
    assert found, f"{method.upper()} {path} {status} has no example of {uri}"
    return found[0]


def check_against_document(document: Document, method: str, path: str, response: Response) -> dict[str, Any]:
    """The real response has the shape, status, type and title its documented example shows."""
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem: dict[str, Any] = response.json()
    problem_validator(document).validate(problem)  # every code the server wrote is in the enum
    assert problem["status"] == response.status_code
    if path:  # 405 and 500 are not listed per operation (docs/api-conventions.md)
        example = documented_example(document, method, path, response.status_code, problem["type"])
        assert (problem["type"], problem["title"], problem["status"]) == (
            example["type"],
            example["title"],
            example["status"],
        )
        assert set(example) - {"detail", "errors"} <= set(problem)
    return problem


@pytest.mark.parametrize("kind", list(TRIGGERS), ids=lambda kind: kind.slug)
def test_each_problem_type_comes_back_as_documented(
    document: Document, caller: Caller, monkeypatch: pytest.MonkeyPatch, kind: ProblemType
) -> None:
    method, path, trigger = TRIGGERS[kind]
    response = trigger(caller, monkeypatch)
    assert response.status_code == kind.status, response.text
    problem = check_against_document(document, method, path, response)
    assert (problem["type"], problem["title"]) == (kind.uri, kind.title)


def _resource(caller: Caller, capacity: int = 2) -> str:
    for uid in ("sub-1", "sub-2"):
        if caller.app.state.runtime.store.subscribers.get(uid) is None:
            add_subscriber(caller.app, uid, "ACTIVE")
    body = resource_body(capacity=capacity)
    response = caller.client.post("/bookings/resources", json=body, headers=caller.headers["operator"])
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _booked(caller: Caller, **overrides: Any) -> tuple[str, Response]:
    """A resource of one seat booked by sub-1 at 10:00, and the answer to a second booking with `overrides`."""
    resource = _resource(caller, capacity=1)
    assert book(caller.client, caller.headers["operator"], resource).status_code == 201
    return resource, book(caller.client, caller.headers["operator"], resource, **overrides)


def _booking(caller: Caller) -> str:
    response = book(caller.client, caller.headers["operator"], _resource(caller))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _cancelled_twice(caller: Caller) -> Response:
    booking = _booking(caller)
    assert caller.client.post(f"/bookings/{booking}/cancel", headers=caller.headers["operator"]).status_code == 200
    return caller.client.post(f"/bookings/{booking}/cancel", headers=caller.headers["operator"])


def _overlapping(caller: Caller) -> Response:
    _booking(caller)  # sub-1 at 10:00 on one resource, then on another
    return book(caller.client, caller.headers["operator"], _resource(caller))


# A sample of the documented field errors, each produced for real: (operation, field, code) -> request.
FieldTrigger = Callable[[Caller], Response]
FIELD_TRIGGERS: dict[tuple[str, str, str, FieldCode], FieldTrigger] = {
    ("post", "/subscribers", "body.msisdn", FieldCode.INVALID_MSISDN): lambda c: c.client.post(
        "/subscribers", json=subscriber_body(3, msisdn="12"), headers=c.headers["operator"]
    ),
    ("post", "/subscribers", "body.msisdn", FieldCode.ALREADY_EXISTS): _twice,
    ("get", "/subscribers/search", "query", FieldCode.EXACTLY_ONE_REQUIRED): lambda c: c.client.get(
        "/subscribers/search", headers=c.headers["viewer"]
    ),
    ("get", "/subscribers/search", "query.msisdn", FieldCode.INVALID_MSISDN): lambda c: c.client.get(
        "/subscribers/search", params={"msisdn": "12"}, headers=c.headers["viewer"]
    ),
    ("patch", "/subscribers/{uid}", "header.if-match", FieldCode.INVALID_ETAG): lambda c: _patch(c, {"If-Match": "3"}),
    ("get", "/auth/users", "query.limit", FieldCode.TOO_LARGE): lambda c: c.client.get(
        "/auth/users", params={"limit": 201}, headers=c.headers["admin"]
    ),
    ("get", "/auth/users/{username}", "path.username", FieldCode.PATTERN_MISMATCH): lambda c: c.client.get(
        "/auth/users/a", headers=c.headers["admin"]
    ),
    ("get", "/bookings/daily-counts", "query.from", FieldCode.INVALID_DATETIME): lambda c: c.client.get(
        "/bookings/daily-counts", params={"from": "tomorrow"}, headers=c.headers["viewer"]
    ),
    ("post", "/migration/jobs", "body.default_region", FieldCode.UNKNOWN_REGION): lambda c: c.client.post(
        "/migration/jobs",
        json={"type": "import", "target": "subscribers", "format": "csv", "default_region": "XX"},
        headers=c.headers["operator"],
    ),
    ("post", "/bookings", "body.start", FieldCode.SLOT_FULL): lambda c: _booked(c, subscriber_uid="sub-2")[1],
    ("post", "/bookings", "body.subscriber_uid", FieldCode.OVERLAPPING_BOOKING): _overlapping,
    ("post", "/bookings", "body.start", FieldCode.MISALIGNED_START): lambda c: book(
        c.client, c.headers["operator"], _resource(c), start=at(10.1)
    ),
    ("post", "/bookings/{booking_id}/cancel", "status", FieldCode.INVALID_TRANSITION): _cancelled_twice,
    ("post", "/bookings/{booking_id}/complete", "status", FieldCode.NOT_STARTED): lambda c: c.client.post(
        f"/bookings/{_booking(c)}/complete", headers=c.headers["operator"]
    ),
    ("patch", "/bookings/resources/{resource_id}", "header.if-match", FieldCode.INVALID_ETAG): lambda c: c.client.patch(
        f"/bookings/resources/{_resource(c)}", json={"capacity": 3}, headers={**c.headers["admin"], "If-Match": "3"}
    ),
    ("post", "/bookings/resources", "body.timezone", FieldCode.UNKNOWN_TIME_ZONE): lambda c: c.client.post(
        "/bookings/resources",
        json={
            "name": "Desk",
            "kind": "store",
            "timezone": "Mars/Olympus",
            "slot_minutes": 30,
            "capacity": 1,
            "weekly_schedule": {},
        },
        headers=c.headers["admin"],
    ),
}


@pytest.mark.parametrize("key", list(FIELD_TRIGGERS), ids=lambda key: f"{key[0]} {key[1]} {key[2]} {key[3].value}")
def test_documented_field_errors_come_back_for_real(
    document: Document, caller: Caller, key: tuple[str, str, str, FieldCode]
) -> None:
    method, path, field, code = key
    response = FIELD_TRIGGERS[key](caller)
    problem = check_against_document(document, method, path, response)
    documented = [
        error
        for example in document["paths"][path][method]["responses"][str(response.status_code)]["content"][
            PROBLEM_CONTENT_TYPE
        ]["examples"].values()
        for error in example["value"].get("errors", [])
    ]
    assert {"field": field, "code": code.value} in [{"field": e["field"], "code": e["code"]} for e in documented]
    assert {"field": field, "code": code.value} in [{"field": e["field"], "code": e["code"]} for e in problem["errors"]]
