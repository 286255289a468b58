"""The OpenAPI document states what the server enforces, and allows nothing the server refuses.

(The fuzzer's positive-data check in tests/test_fuzz.py proves the second half on the running
app; these pin the declarations it relies on.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from app.auth.schemas import UserImport
from app.main import create_app
from app.openapi import build_openapi
from app.storage.cursor import CURSOR_PATTERN
from app.subscribers.fields import supported_regions
from app.subscribers.schemas import SubscriberIn
from tests.bookings.test_bookings_api import resource_body
from tests.support import make_settings


def document(**settings: Any) -> dict[str, Any]:
    return build_openapi(create_app(make_settings(**settings)))


def parameters(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                yield f"{method.upper()} {path} {parameter['in']}.{parameter['name']}", parameter


def test_no_parameter_is_nullable() -> None:
    """A query string or header can't carry null: absent means the default."""
    nullable = [where for where, parameter in parameters(document()) if "null" in json.dumps(parameter["schema"])]
    assert nullable == []


def test_every_cursor_is_documented_with_the_codecs_shape() -> None:
    """The shape the codec checks; a well-formed cursor it did not sign answers 404, not 400."""
    spec = document()
    cursors = [(where, parameter) for where, parameter in parameters(spec) if where.endswith("query.cursor")]
    assert len(cursors) == 11
    for where, parameter in cursors:
        assert parameter["schema"]["pattern"] == CURSOR_PATTERN, where
        assert parameter["schema"]["maxLength"] == 2048, where
        operation = spec["paths"][where.split()[1]][where.split()[0].lower()]
        assert "404" in operation["responses"], where
        assert "400" not in operation["responses"], where


def _property(spec: dict[str, Any], component: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"][component]["properties"][name]
    return found


def _body_schema(spec: dict[str, Any], path: str, method: str, media_type: str) -> dict[str, Any]:
    """A request body's schema, its component looked up (every body is a named component)."""
    schema: dict[str, Any] = spec["paths"][path][method]["requestBody"]["content"][media_type]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_a_new_password_is_documented_with_the_configured_minimum() -> None:
    for minimum in (12, 20):
        spec = document(password_min_length=minimum)
        for component, name in (
            ("UserCreate", "password"),
            ("PasswordChange", "new_password"),
            ("PasswordReset", "new_password"),
        ):
            schema = _property(spec, component, name)
            assert schema["minLength"] == minimum
            assert re.fullmatch(schema["pattern"], "x" * minimum)
            assert not re.fullmatch(schema["pattern"], " " * minimum + "x" * (minimum - 1) + " ")
        assert "x-password-policy" not in json.dumps(spec)


def test_field_rules_the_server_checks_are_in_the_document() -> None:
    spec = document()
    subscriber = _body_schema(spec, "/subscribers", "post", "application/json")["properties"]
    assert subscriber["email"]["anyOf"][0]["maxLength"] == 254
    assert re.fullmatch(subscriber["imsi"]["pattern"], "234150999999999")
    assert not re.fullmatch(subscriber["imsi"]["pattern"], "23415099999999")
    assert subscriber["uid"]["anyOf"][0]["not"] == {"enum": ["search"]}
    days = dict(parameters(spec))["GET /bookings/daily-counts query.days"]["schema"]
    assert (days["minimum"], days["maximum"]) == (1, 31)
    username = dict(parameters(spec))["GET /auth/users/{username} path.username"]["schema"]
    assert re.fullmatch(username["pattern"], "Jdoe")
    assert not re.fullmatch(username["pattern"], "j")


def test_search_takes_exactly_one_criterion_by_the_schema() -> None:
    from jsonschema import Draft202012Validator

    (criterion,) = [p for w, p in parameters(document()) if w == "GET /subscribers/search query.criterion"]
    assert (criterion["style"], criterion["explode"], criterion["required"]) == ("form", True, True)
    validator = Draft202012Validator(criterion["schema"])
    assert validator.is_valid({"imsi": "234150999999999"})
    assert validator.is_valid({"uid_prefix": "sub-00"})
    assert not validator.is_valid({})
    assert not validator.is_valid({"imsi": "234150999999999", "uid_prefix": "sub-00"})
    assert not validator.is_valid({"imsi": "2341"})


def test_every_created_id_links_to_the_operations_that_take_it() -> None:
    """Each operation with a path id is reachable from the operation that creates the id."""
    spec = document()
    linked: set[str] = set()
    for operations in spec["paths"].values():
        for operation in operations.values():
            for link in operation["responses"].get("201", {}).get("links", {}).values():
                linked.add(link["operationId"])
    with_path_id = {
        operation["operationId"]
        for path, operations in spec["paths"].items()
        if "{" in path
        for operation in operations.values()
    }
    # A job's output exists only once an export has finished: a link from its creation would be
    # broken for every other job (schemathesis's stateful check ST302 reports it).
    assert with_path_id - {"jobs_output"} <= linked, with_path_id - linked
    assert "jobs_output" not in linked
    update = spec["paths"]["/subscribers"]["post"]["responses"]["201"]["links"]["subscribers_update"]
    assert update["parameters"] == {"path.uid": "$response.body#/uid", "header.if-match": "$response.header.ETag"}


def test_a_merge_patch_may_clear_only_the_optional_fields() -> None:
    properties = _body_schema(document(), "/subscribers/{uid}", "patch", "application/merge-patch+json")["properties"]
    for name in ("msisdn", "imsi", "first_name", "last_name", "status", "plan"):
        assert "null" not in json.dumps(properties[name]), name
    for name in ("email", "iccid", "attributes"):
        assert {"type": "null"} in properties[name]["anyOf"], name


def test_a_window_with_no_time_in_it_holds_nothing(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    """Well-formed, so not a 422: an empty or inverted window is simply empty."""
    admin = role_headers["admin"]
    later, earlier = "2026-11-23T10:00:00Z", "2026-11-23T09:00:00Z"
    audit = client.get("/audit", params={"since": later, "until": earlier}, headers=admin)
    assert (audit.status_code, audit.json()["items"]) == (200, [])
    resource = client.post("/bookings/resources", json=resource_body(), headers=admin)
    assert resource.status_code == 201, resource.text
    bookings = client.get(
        "/bookings", params={"resource_id": resource.json()["id"], "from": later, "to": earlier}, headers=admin
    )
    assert (bookings.status_code, bookings.json()["items"]) == (200, [])


def test_parameters_that_go_together_are_one_object() -> None:
    from jsonschema import Draft202012Validator

    spec = document()
    found = dict(parameters(spec))
    bookings = Draft202012Validator({**found["GET /bookings query.filter"]["schema"], "components": spec["components"]})
    window = {"from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z"}
    assert bookings.is_valid({"resource_id": "r1"})
    assert bookings.is_valid({"subscriber_uid": "s1", **window})
    assert bookings.is_valid({"status": "CONFIRMED", **window})
    assert not bookings.is_valid({"status": "CONFIRMED"})  # a status needs its window
    assert not bookings.is_valid({"resource_id": "r1", "status": "CONFIRMED", **window})
    assert not bookings.is_valid({})
    audit = found["GET /audit query.entity"]
    assert audit["required"] is False
    entity = Draft202012Validator(audit["schema"])
    assert entity.is_valid({"entity_type": "subscriber", "entity_id": "sub-1"})
    assert not entity.is_valid({"entity_id": "sub-1"})  # an id needs its type


def test_an_email_at_a_special_use_domain_is_outside_the_schema() -> None:
    from jsonschema import Draft202012Validator, FormatChecker

    subscriber = _body_schema(document(), "/subscribers", "post", "application/json")
    email = Draft202012Validator(subscriber["properties"]["email"]["anyOf"][0], format_checker=FormatChecker())
    assert email.is_valid("jane.doe@example.com")
    for refused in ("jane@host.test", "jane@LOCALHOST", "jane@x.Onion"):
        assert not email.is_valid(refused), refused


def test_a_malformed_multipart_body_is_a_documented_problem(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """A part without its name is a 422 naming the field; a body the parser can't split at all
    (no boundary) is Starlette's 400, which the document now lists."""
    documented = document()["paths"]["/migration/upload"]["post"]["responses"]
    for content_type, body in (
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nno end"),
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: nonsense\r\n\r\nx\r\n--b--\r\n"),
    ):
        response = client.post(
            "/migration/upload", content=body, headers={**role_headers["admin"], "Content-Type": content_type}
        )
        assert str(response.status_code) in documented, response.text
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"


def test_attribute_numbers_are_bounded_to_what_every_store_keeps(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """DynamoDB keeps numbers of magnitude 1e-130 to 1e126 only: beyond, a 422, never a 500."""
    from tests.subscribers.test_api import body

    operator = role_headers["operator"]
    for n, value in enumerate((-1.4390057870960898e269, 1e-200, 1e126)):
        response = client.post("/subscribers", json=body(n, attributes={"x": value}), headers=operator)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"].startswith("body.attributes")
    for n, value in enumerate((9.5e124, -2.5e-130, 0.5, 1e20), start=10):
        response = client.post("/subscribers", json=body(n, attributes={"x": value}), headers=operator)
        assert response.status_code == 201, response.text
    schema = _body_schema(document(), "/subscribers", "post", "application/json")
    from jsonschema import Draft202012Validator

    values = Draft202012Validator(schema["properties"]["attributes"]["additionalProperties"])
    assert not values.is_valid(1e126)
    assert not values.is_valid(1e-200)
    assert values.is_valid(9.5e124)
    assert values.is_valid(2**53 - 1)


def test_a_job_is_one_clean_object_per_type() -> None:
    """Which fields a job takes depends on its type; the document says so with a discriminated oneOf."""
    spec = document()
    body = _body_schema(spec, "/migration/jobs", "post", "application/json")
    schemas = spec["components"]["schemas"]
    by_type = {tag: ref.rsplit("/", 1)[1] for tag, ref in body["discriminator"]["mapping"].items()}
    assert body["discriminator"]["propertyName"] == "type"
    assert by_type == {"import": "ImportJobCreate", "export": "ExportJobCreate", "delete": "DeleteJobCreate"}
    assert sorted(one["$ref"].rsplit("/", 1)[1] for one in body["oneOf"]) == sorted(by_type.values())
    # An import is one object per target, each with the mapping of its target's fields.
    imports = [one["$ref"].rsplit("/", 1)[1] for one in schemas["ImportJobCreate"]["oneOf"]]
    assert imports == ["SubscriberImportJobCreate", "UserImportJobCreate"]
    objects = {
        "import": imports[0],
        "users import": imports[1],
        "export": "ExportJobCreate",
        "delete": "DeleteJobCreate",
    }
    fields = {tag: set(schemas[name]["properties"]) for tag, name in objects.items()}
    assert all(schemas[name]["additionalProperties"] is False for name in objects.values())
    assert {"mapping", "mode", "dry_run", "default_region"} <= fields["import"] & fields["users import"]
    assert not {"mapping", "mode", "dry_run", "default_region"} & (fields["export"] | fields["delete"])
    assert {"filters", "mask"} <= fields["export"]
    assert not {"filters", "mask"} & (fields["import"] | fields["delete"])
    assert "format" in schemas[objects["import"]]["required"]
    assert "format" in schemas[objects["users import"]]["required"]
    assert "format" in schemas[objects["delete"]]["required"]
    assert "format" not in schemas[objects["export"]].get("required", [])


def test_an_empty_input_file_is_allowed_by_the_document() -> None:
    """A file with no bytes is a file with no rows (tests/migration/test_subscriber_jobs.py runs one)."""
    body = document()["paths"]["/migration/jobs/{job_id}/input"]["put"]["requestBody"]
    assert body["required"] is False  # no body at all is an empty file too
    content = body["content"]
    assert content
    assert all("minLength" not in media["schema"] for media in content.values())


def test_an_imports_region_is_one_the_server_has_phone_metadata_for() -> None:
    """`'000'` fits 2-3 characters but is no region: the document lists the regions instead."""
    region = _property(document(), "SubscriberImportJobCreate", "default_region")
    assert {"enum": supported_regions(), "type": "string"} in region["anyOf"]


def test_an_uploads_options_are_documented_as_the_json_object_they_are() -> None:
    """The form field carries JSON text; OpenAPI 3.1 says so with the object's schema and the part's
    `contentType`, so a generator sends valid JSON (an import by default, or a delete)."""
    spec = document()
    content = spec["paths"]["/migration/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert content["encoding"] == {"options": {"contentType": "application/json"}}
    options = _property(spec, "JobsUploadBody", "options")
    import_branch, users_branch, delete_branch = options["oneOf"]
    assert import_branch["properties"]["type"] == {**import_branch["properties"]["type"], "const": "import"}
    assert import_branch["required"] == []
    assert users_branch["required"] == ["target"]
    assert delete_branch["required"] == ["type"]
    assert all(branch["additionalProperties"] is False for branch in options["oneOf"])


def test_a_mapping_lists_the_fields_of_its_target() -> None:
    """Which fields a mapping may name depends on the import's target: one mapping per target."""
    schemas = document()["components"]["schemas"]
    for name, model in (("SubscriberMapping", SubscriberIn), ("UserMapping", UserImport)):
        properties = schemas[name]["properties"]
        assert properties["columns"]["additionalProperties"]["enum"] == list(model.model_fields)
        for section in ("transforms", "defaults"):
            assert properties[section]["propertyNames"]["enum"] == list(model.model_fields)
        assert properties["transforms"]["additionalProperties"]["maxItems"] == 10  # steps per field


def test_a_schedule_exception_is_closed_or_has_hours_as_the_document_says() -> None:
    from jsonschema import Draft202012Validator

    exception = document()["components"]["schemas"]["ScheduleExceptionIn"]
    validator = Draft202012Validator({**exception, "properties": {**exception["properties"], "hours": {}}})
    hours = [{"open": "09:00", "close": "10:00"}]
    day = "2026-12-24"
    assert validator.is_valid({"date": day, "closed": True})
    assert validator.is_valid({"date": day, "closed": True, "hours": []})
    assert validator.is_valid({"date": day, "hours": hours})
    assert validator.is_valid({"date": day, "closed": False, "hours": hours})
    for refused in ({"date": day}, {"date": day, "closed": False}, {"date": day, "closed": True, "hours": hours}):
        assert not validator.is_valid(refused)
