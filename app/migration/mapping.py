"""Column mapping and simple transforms, from a source row to the target record's fields.

A mapping is declared per job (JSON), validated when the job is created, and applied row by row:

    {
      "columns":    {"MSISDN": "msisdn", "First Name": "first_name", "Tariff": "plan"},
      "transforms": {"status": ["trim", "upper", {"map": {"A": "ACTIVE", "S": "SUSPENDED"}}]},
      "defaults":   {"status": "ACTIVE"},
      "unmapped":   "attributes"
    }

The fields a mapping names are those of the job's target (the document lists them per target).
A column's name matches ignoring case and surrounding spaces. Columns not named in `columns` map
to the field of the same name. Several columns may feed one field (a coalesce, e.g. "Mobile" and
"Phone" both to `msisdn`): the first non-empty cell wins, in the order `columns` lists them, then
a column named like the field. Empty cells count as missing, so `defaults` apply to them.
Columns that match no field go to `attributes`, are rejected (the default: a misspelt header
should not silently become an attribute) or are ignored, as `unmapped` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from app.subscribers.fields import (
    MAX_ATTRIBUTE_INT,
    MAX_ATTRIBUTE_MAGNITUDE,
    MAX_ATTRIBUTE_STRING,
    MIN_ATTRIBUTE_MAGNITUDE,
)


def _whole_float_as_int(value: Any) -> Any:
    # JSON Schema counts 0.0 and 3.0 as integers; so does the mapping.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# What a mapping may put into a row: a value some field or attribute can hold, so both stores keep
# it when the job stores its mapping (DynamoDB refuses numbers beyond 1e125 and non-zero ones below
# 1e-130; JavaScript clients lose integers beyond 2^53): the bounds of a subscriber attribute.
# Strict: a value too long for one kind must not be read as another ("000" is no number here).
Scalar = (
    StrictBool
    | Annotated[StrictInt, BeforeValidator(_whole_float_as_int), Field(ge=-MAX_ATTRIBUTE_INT, le=MAX_ATTRIBUTE_INT)]
    | Annotated[StrictFloat, Field(ge=MIN_ATTRIBUTE_MAGNITUDE, le=MAX_ATTRIBUTE_MAGNITUDE)]
    | Annotated[StrictFloat, Field(ge=-MAX_ATTRIBUTE_MAGNITUDE, le=-MIN_ATTRIBUTE_MAGNITUDE)]
    | Annotated[StrictStr, StringConstraints(max_length=MAX_ATTRIBUTE_STRING)]
)
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# A target's field name; each target's mapping (app.migration.schemas) lists its own fields.
FieldName = TypeVar("FieldName", bound=str)


class MapValues(BaseModel):
    model_config = ConfigDict(extra="forbid")
    map: dict[Annotated[str, StringConstraints(max_length=128)], Scalar] = Field(max_length=500)
    case_sensitive: StrictBool = False


TransformStep = Literal["trim", "upper", "lower", "digits_only"] | MapValues
Steps = Annotated[list[TransformStep], Field(max_length=10, description="Run in order, at most 10.")]


class MappingSpec(BaseModel, Generic[FieldName]):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "columns": {"MSISDN": "msisdn", "First Name": "first_name", "Tariff": "plan"},
                "transforms": {"status": ["trim", "upper", {"map": {"A": "ACTIVE", "S": "SUSPENDED"}}]},
                "defaults": {"status": "ACTIVE"},
                "unmapped": "attributes",
            }
        },
    )

    columns: dict[ColumnName, FieldName] = Field(default_factory=dict, max_length=200)
    transforms: dict[FieldName, Steps] = Field(default_factory=dict, max_length=100)
    defaults: dict[FieldName, Scalar] = Field(default_factory=dict, max_length=100)
    unmapped: Literal["attributes", "reject", "ignore"] = "reject"


def stored_mapping(spec: MappingSpec[Any]) -> dict[str, Any]:
    """The mapping as a job stores it (and audits it): the keys users choose (column names, source
    values) become [key, value] pairs. Stores give such keys meaning or refuse them: MongoDB reads
    `.` and a leading `$` in an update as paths and operators, DynamoDB refuses an empty name."""
    data = spec.model_dump(mode="json")
    data["columns"] = [list(pair) for pair in spec.columns.items()]
    for steps in data["transforms"].values():
        for step in steps:
            if isinstance(step, dict):
                step["map"] = [list(pair) for pair in step["map"].items()]
    return data


def mapping_of(stored: Mapping[str, Any]) -> MappingSpec[str]:
    """The mapping a job stored: pairs, or (jobs stored before pairs) objects, which read the same."""
    data = dict(stored)
    data["columns"] = dict(stored.get("columns") or {})
    data["transforms"] = {
        field: [{**step, "map": dict(step["map"])} if isinstance(step, dict) else step for step in steps]
        for field, steps in (stored.get("transforms") or {}).items()
    }
    return MappingSpec[str].model_validate(data)


@dataclass(frozen=True)
class MappingProblem:
    field: str
    code: str
    message: str
    value: Any = None


class RowMapper:
    """Applies one `MappingSpec` to rows whose fields must be among `fields` (plus `attributes`)."""

    def __init__(self, spec: MappingSpec[Any], fields: Iterable[str]) -> None:
        self.spec = spec
        self.fields = frozenset(fields)
        self._by_lower = {name.lower(): name for name in self.fields}
        # Each column's fields, with the rank of the mapping's entry: a column named like its field comes last.
        self._explicit: dict[str, list[tuple[str, int]]] = {}
        for rank, (column, field) in enumerate(spec.columns.items()):
            self._explicit.setdefault(column.strip().lower(), []).append((field, rank))
        self._implicit_rank = len(spec.columns)
        self._resolved: dict[str, list[tuple[str, int]]] = {}
        self._transforms = {field: [_compile(step) for step in steps] for field, steps in spec.transforms.items()}

    def targets_of(self, column: str) -> list[tuple[str, int]]:
        """The fields `column` feeds, each with its rank (the lowest non-empty cell wins)."""
        if column not in self._resolved:
            lowered = column.strip().lower()
            same_name = self._by_lower.get(lowered)
            implicit = [(same_name, self._implicit_rank)] if same_name else []
            self._resolved[column] = self._explicit.get(lowered) or implicit
        return self._resolved[column]

    def unmapped_columns(self, columns: Iterable[str]) -> list[str]:
        return [column for column in columns if not self.targets_of(column)]

    def apply(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[MappingProblem]]:
        record: dict[str, Any] = {}
        ranks: dict[str, int] = {}
        attributes: dict[str, Any] = {}
        problems: list[MappingProblem] = []
        for column, raw in values.items():
            targets = self.targets_of(column)
            if not targets:
                if self.spec.unmapped == "attributes" and not _is_empty(raw):
                    attributes[column] = raw
                elif self.spec.unmapped == "reject":
                    problems.append(MappingProblem(column, "unmapped_column", "column is not mapped to a field", raw))
                continue
            if _is_empty(raw):
                continue  # an empty cell is a missing value
            for field, rank in targets:
                if rank < ranks.get(field, self._implicit_rank + 1):
                    record[field], ranks[field] = raw, rank
        for field, steps in self._transforms.items():
            if field in record:
                value = record[field]
                for step in steps:
                    value = step(value)
                record[field] = value
        for field, value in list(record.items()):
            if _is_empty(value):
                del record[field]  # a transform may leave nothing
        for field, default in self.spec.defaults.items():
            record.setdefault(field, default)
        if attributes:
            given = record.get("attributes")
            record["attributes"] = {**attributes, **given} if isinstance(given, dict) else attributes
        return record, problems


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _digits_only(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _compile(step: TransformStep) -> Callable[[Any], Any]:
    """One step as a function, built once per job rather than once per row."""
    if isinstance(step, MapValues):
        if step.case_sensitive:
            exact = dict(step.map)
            return lambda value: exact.get(str(value), value)
        folded = {key.lower(): mapped for key, mapped in step.map.items()}
        return lambda value: folded.get(str(value).lower(), value)
    text_steps: dict[str, Callable[[str], str]] = {
        "trim": str.strip,
        "upper": str.upper,
        "lower": str.lower,
        "digits_only": _digits_only,
    }
    text_step = text_steps[step]
    # Text steps leave numbers and booleans (from JSON files) alone.
    return lambda value: text_step(value) if isinstance(value, str) else value
