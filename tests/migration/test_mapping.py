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


@pytest.mark.parametrize("order", [("Mobile", "Phone"), ("Phone", "Mobile")])
def test_several_columns_feed_one_field_first_non_empty_in_the_mappings_order(order: tuple[str, str]) -> None:
    first, second = order
    coalesce = mapper(columns={first: "msisdn", second: "msisdn"})
    both = {"uid": "s1", "Phone": "+447911100001", "Mobile": "+447911100002"}
    assert coalesce.apply(both)[0]["msisdn"] == both[first]
    # An empty (or blank) cell is no value: the next column's is taken, whatever the file's order.
    assert coalesce.apply({first: " ", "uid": "s1", second: "+447911100003"})[0]["msisdn"] == "+447911100003"
    assert coalesce.apply({second: "", first: ""})[0] == {}


def test_a_column_named_like_the_field_comes_after_the_mapped_ones() -> None:
    coalesce = mapper(columns={" mobile ": "msisdn"}, transforms={"msisdn": ["digits_only"]})
    assert coalesce.apply({"msisdn": "+44 1", "MOBILE": "+44 2"})[0] == {"msisdn": "442"}
    assert coalesce.apply({"msisdn": "+44 1", "MOBILE": ""})[0] == {"msisdn": "441"}
    # Two columns that differ only in case both feed the field: the first non-empty in the file wins.
    assert mapper().apply({"Plan": "", "PLAN": "GOLD", "plan": "BASIC"})[0] == {"plan": "GOLD"}


@pytest.mark.parametrize(
    "spec",
    [
        {"transforms": {"status": ["reverse"]}},
        {"unmapped": "keep"},
        {"defaults": {"plan": {"nested": 1}}},
        {"surprise": 1},
        {"transforms": {"status": ["trim"] * 11}},
        {"transforms": {"status": [{"map": {}, "case_sensitive": 0}]}},
        # Values no store keeps (found by the fuzz run: a 500 from DynamoDB on storing the job).
        {"transforms": {"plan": [{"map": {"A": 2.2e235}}]}},
        {"transforms": {"plan": [{"map": {"A": 1e-200}}]}},
        {"defaults": {"plan": "x" * 1025}},
        {"defaults": {"plan": "0" * 1025}},  # too long a string is no number either
    ],
)
def test_bad_mapping_is_refused(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MappingSpec.model_validate(spec)
