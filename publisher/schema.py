"""``schema.json``: ports, columns, parameters, limits and isolation (publishing.md).

Loaded strictly with marshmallow: an unknown key anywhere is an error that names it, so a
typo never silently falls back to a default.
"""
from __future__ import annotations

import collections

import dataclasses
import re

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from scorepub_sandbox.table import TYPES

from .coercion import CellError, convert_cell
from .errors import SchemaError
from .python2 import VERSION_LABELS, normalize_version

PORTS = ("input1", "input2")
ISOLATION = ("warm", "per-call")
COMPAT = ("classic", "none")
DEFAULT_LIMITS = {"timeout_s": 60, "memory_mb": 1024, "max_concurrent_calls": 20}
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NO_DEFAULT = object()


class _MayHaveDefault:
    """A spec whose ``default`` may be left out (``_NO_DEFAULT``, as None is a default too)."""

    default: object

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


@dataclasses.dataclass(frozen=True)
class ColumnSpec(_MayHaveDefault):
    name: str
    type: str
    nullable: bool = False
    default: object = _NO_DEFAULT


@dataclasses.dataclass(frozen=True)
class PortSpec:
    columns: tuple[ColumnSpec, ...]
    min_rows: int = 1
    max_rows: int = 1_000_000
    extra_columns: str = "refuse"


@dataclasses.dataclass(frozen=True)
class ParameterSpec(_MayHaveDefault):
    type: str
    default: object = _NO_DEFAULT


@dataclasses.dataclass(frozen=True)
class Limits:
    timeout_s: int
    memory_mb: int
    max_concurrent_calls: int

    def capped(self, settings) -> "Limits":
        """These limits within the server's own maxima."""
        return Limits(
            min(self.timeout_s, settings.max_timeout_s),
            min(self.memory_mb, settings.max_memory_mb),
            min(self.max_concurrent_calls, settings.max_concurrent_calls),
        )


@dataclasses.dataclass(frozen=True)
class ServiceSchema:
    inputs: dict  # port name -> PortSpec, in port order
    parameters: dict  # name -> ParameterSpec
    limits: Limits
    isolation: str = "warm"
    python_version: str | None = None  # "2.7" or "3"; None: not said (publishing decides)
    compat: str = "classic"

    @property
    def ports(self) -> list[str]:
        return list(self.inputs)


def _json_bool(value) -> None:
    # marshmallow's Boolean also takes "yes", "on" and 1; a schema file should say true or false
    if not isinstance(value, bool):
        raise ValidationError("Not a valid boolean (use true or false).")


def _python_version(value) -> None:
    # the classic labels, or "2.7" / "3" (also as JSON numbers: 2.7 and 3)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value) not in VERSION_LABELS:
        raise ValidationError("Must be one of: " + ", ".join(f'"{v}"' for v in VERSION_LABELS) + ".")


UNKNOWN_KEY = "unknown key (a typo?)"


class _Strict(Schema):
    class Meta:
        unknown = RAISE

    def handle_error(self, error: ValidationError, data, *, many: bool, **kwargs):
        """Say which of the problems are keys this level does not declare, found by comparing the
        document's keys with the declared fields (marshmallow reports each under its key)."""
        if many or not isinstance(data, dict) or not isinstance(error.messages, dict):
            return
        declared = {f.data_key if f.data_key is not None else name for name, f in self.load_fields.items()}
        unknown = [key for key in data if key not in declared and key in error.messages]
        if unknown:
            messages = {**error.messages, **{key: [UNKNOWN_KEY] for key in unknown}}
            raise ValidationError(messages, data=data, valid_data=error.valid_data)


class _ColumnSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=256))
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    nullable = fields.Raw(load_default=False, validate=_json_bool)
    default = fields.Raw(allow_none=True)

    @validates_schema
    def _default_fits(self, data, **kwargs):
        if "default" not in data or "type" not in data:
            return
        value = data["default"]
        if value is None:
            if not data.get("nullable", False):
                raise ValidationError("null default on a column that is not nullable", "default")
            return
        try:
            convert_cell(data["type"], value)
        except CellError as exc:
            raise ValidationError(f"{value!r} {exc}", "default") from None

    @post_load
    def _make(self, data, **kwargs):
        return ColumnSpec(**data)


class _PortSchema(_Strict):
    columns = fields.List(fields.Nested(_ColumnSchema), required=True)
    min_rows = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=0))
    max_rows = fields.Integer(strict=True, load_default=1_000_000, validate=validate.Range(min=1))
    extra_columns = fields.String(load_default="refuse", validate=validate.OneOf(("refuse", "allow")))

    @validates_schema
    def _consistent(self, data, **kwargs):
        counts = collections.Counter(c.name for c in data.get("columns", []))  # linear: 40k columns once took 15 s
        dupes = sorted(n for n, k in counts.items() if k > 1)
        if dupes:
            raise ValidationError(f"duplicate column name(s): {', '.join(dupes)}", "columns")
        if data.get("min_rows", 1) > data.get("max_rows", 1_000_000):
            raise ValidationError("min_rows is greater than max_rows", "min_rows")

    @post_load
    def _make(self, data, **kwargs):
        return PortSpec(columns=tuple(data.pop("columns")), **data)


class _InputsSchema(_Strict):
    input1 = fields.Nested(_PortSchema)
    input2 = fields.Nested(_PortSchema)

    @validates_schema
    def _positional(self, data, **kwargs):
        if "input2" in data and "input1" not in data:
            raise ValidationError("input2 is declared without input1 (name a single port input1)", "input2")


class _ParameterSchema(_Strict):
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    default = fields.Raw(allow_none=False)

    @validates_schema
    def _default_fits(self, data, **kwargs):
        if "default" in data and "type" in data:
            try:
                convert_cell(data["type"], data["default"])
            except CellError as exc:
                raise ValidationError(f"{data['default']!r} {exc}", "default") from None

    @post_load
    def _make(self, data, **kwargs):
        return ParameterSpec(**data)


class _LimitsSchema(_Strict):
    timeout_s = fields.Integer(strict=True, validate=validate.Range(min=1))
    memory_mb = fields.Integer(strict=True, validate=validate.Range(min=64))
    max_concurrent_calls = fields.Integer(strict=True, validate=validate.Range(min=1))

    @post_load
    def _make(self, data, **kwargs):
        return Limits(**{**DEFAULT_LIMITS, **data})


class _ServiceSchema(_Strict):
    inputs = fields.Nested(_InputsSchema, required=True)
    parameters = fields.Dict(keys=fields.String(validate=validate.Regexp(_PARAM_NAME)),
                             values=fields.Raw(), load_default=dict)
    limits = fields.Nested(_LimitsSchema, load_default=lambda: Limits(**DEFAULT_LIMITS))
    isolation = fields.String(load_default="warm", validate=validate.OneOf(ISOLATION))
    python_version = fields.Raw(load_default=None, validate=_python_version)
    compat = fields.String(load_default="classic", validate=validate.OneOf(COMPAT))

    @post_load
    def _make(self, data, **kwargs):
        params, errors = {}, {}
        for name, raw in data["parameters"].items():
            try:
                params[name] = _ParameterSchema().load(raw) if isinstance(raw, dict) else _not_object()
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError({"parameters": errors})
        inputs = {p: data["inputs"][p] for p in PORTS if p in data["inputs"]}
        return ServiceSchema(inputs, params, data["limits"], data["isolation"],
                             normalize_version(None if data["python_version"] is None else str(data["python_version"])), data["compat"])


def _not_object():
    raise ValidationError(["must be an object with 'type' and optionally 'default'"])


def _flatten(messages, path=()):
    """marshmallow's nested error dict as ("a.b[0].c", "message") pairs."""
    if isinstance(messages, dict):
        for key, sub in messages.items():
            if key == "_schema":
                yield from _flatten(sub, path)
            elif isinstance(key, int):
                yield from _flatten(sub, path[:-1] + (f"{path[-1]}[{key}]",) if path else (f"[{key}]",))
            else:
                yield from _flatten(sub, path + (str(key),))
    elif isinstance(messages, list):
        for m in messages:
            yield from _flatten(m, path)
    else:
        yield ".".join(path) or "(top level)", str(messages).rstrip(".")


def parse_schema(document, source: str = "schema.json") -> ServiceSchema:
    """Validate a decoded schema.json; raise SchemaError naming every bad key."""
    if not isinstance(document, dict):
        raise SchemaError(f"{source}: must be a JSON object")
    try:
        return _ServiceSchema().load(document)
    except ValidationError as exc:
        problems = [f"{p}: {m}" for p, m in _flatten(exc.messages)]
        raise SchemaError(f"{source}: " + "; ".join(problems)) from None


def schema_to_document(schema: ServiceSchema) -> dict:
    """The normalized JSON form of a schema (what goes into the artifact)."""
    def column(c: ColumnSpec):
        d = {"name": c.name, "type": c.type, "nullable": c.nullable}
        if c.has_default:
            d["default"] = c.default
        return d

    def parameter(p: ParameterSpec):
        return {"type": p.type, **({"default": p.default} if p.has_default else {})}

    document = {
        "inputs": {
            name: {
                "columns": [column(c) for c in port.columns],
                "min_rows": port.min_rows,
                "max_rows": port.max_rows,
                "extra_columns": port.extra_columns,
            }
            for name, port in schema.inputs.items()
        },
        "parameters": {n: parameter(p) for n, p in schema.parameters.items()},
        "limits": dataclasses.asdict(schema.limits),
        "isolation": schema.isolation,
    }
    # written only when not the default, so artifacts made before these keys keep their digest
    if schema.python_version == "2.7":
        document["python_version"] = "2.7"
    if schema.compat != "classic":
        document["compat"] = schema.compat
    return document


def infer_schema(sample: dict) -> ServiceSchema:
    """A one-port schema inferred from sample.json's ``input1`` rows (no schema.json given)."""
    rows = sample.get("input1") if isinstance(sample, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise SchemaError("sample.json: without schema.json, sample.json must hold "
                          "{\"input1\": [row objects]} to infer the columns from", field="sample.json")
    names: list[str] = []
    for r in rows:
        names.extend(k for k in r if k not in names)
    columns = []
    for name in names:
        values = [r.get(name) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {bool} and kinds:
            type_ = "boolean"
        elif kinds <= {int} and kinds:
            type_ = "integer"
        elif kinds <= {int, float} and kinds and bool not in kinds:
            type_ = "double"
        else:
            type_ = "string"
        column = {"name": name, "type": type_, "nullable": None in values}
        if any(name not in r for r in rows):
            column["default"] = None  # some sample rows leave it out: so may a request
        columns.append(column)
    return parse_schema({"inputs": {"input1": {"columns": columns}}}, source="inferred schema")
