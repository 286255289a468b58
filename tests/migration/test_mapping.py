from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.migration.mapping import MappingSpec, RowMapper

FIELDS = ["uid", "msisdn", "status", "plan", "first_name", "attributes"]


def mapper(**spec: object) -> RowMapper:
    return RowMapper(MappingSpec.model_validate(spec), FIELDS)


def test_explicit_and_same_name_columns_with_transforms_and_defaults() -> None:
    row = {"UID": "s1", "Phone": " 07700 900123 ", "Status": " a ", "Tariff": "", "Region": "north"}
    record, problems = mapper(
        columns={"Phone": "msisdn", "Tariff": "plan"},
        transforms={"status": ["trim", "upper", {"map": {"A": "ACTIVE"}}], "msisdn": ["digits_only"]},
        defaults={"plan": "BASIC"},
        unmapped="attributes",
    ).apply(row)
    assert problems == []
    assert record == {
        "uid": "s1",
        "msisdn": "07700900123",
        "status": "ACTIVE",
        "plan": "BASIC",  # empty cell -> default
        "attributes": {"Region": "north"},
    }


def test_map_is_case_insensitive_unless_asked() -> None:
    assert mapper(transforms={"status": [{"map": {"a": "ACTIVE"}}]}).apply({"status": "A"})[0] == {"status": "ACTIVE"}
    strict = mapper(transforms={"status": [{"map": {"a": "ACTIVE"}, "case_sensitive": True}]})
    assert strict.apply({"status": "A"})[0] == {"status": "A"}


def test_unmapped_columns_rejected_by_default_or_ignored() -> None:
    record, problems = mapper().apply({"uid": "s1", "Colour": "red"})
    assert record == {"uid": "s1"}
    assert [(p.field, p.code, p.value) for p in problems] == [("Colour", "unmapped_column", "red")]
    assert mapper(unmapped="ignore").apply({"uid": "s1", "Colour": "red"}) == ({"uid": "s1"}, [])
    assert mapper().unmapped_columns(["UID", "Colour", "MSISDN"]) == ["Colour"]


def test_json_values_keep_their_types_and_attributes_merge() -> None:
    record, _ = mapper(transforms={"plan": ["upper"]}, unmapped="attributes").apply(
        {"uid": "s1", "plan": 7, "attributes": {"tier": 1}, "vip": True}
    )
    assert record == {"uid": "s1", "plan": 7, "attributes": {"vip": True, "tier": 1}}


def test_mapping_refers_to_unknown_fields() -> None:
    problems = mapper(columns={"Phone": "telephone"}, defaults={"colour": "red"}).check_spec()
    assert {(p.field, p.code) for p in problems} == {
        ("mapping.columns.Phone", "unknown_field"),
        ("mapping.defaults.colour", "unknown_field"),
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"columns": {"A": "uid", "B": "uid"}},
        {"transforms": {"status": ["reverse"]}},
        {"unmapped": "keep"},
        {"defaults": {"plan": {"nested": 1}}},
        {"surprise": 1},
        {"transforms": {"status": ["trim"] * 11}},
    ],
)
def test_bad_mapping_is_refused(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MappingSpec.model_validate(spec)
