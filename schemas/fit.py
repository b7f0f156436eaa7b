"""Does a record fit its Avro schema? Checked before encoding, naming the field.

fastavro refuses most misfits itself, but not all of them, and not always by
name: an ``int`` field given 2**40 is written as a long and read back as a
number ClickHouse's ``Int32`` cannot hold, and a decimal with too many digits
is refused as "The decimal precision is bigger than allowed by schema",
without saying which field. :func:`misfits` walks the record along the schema
and returns one sentence per problem, naming the field by its path
(``payload<BookingCreated>.average_daily_rate``), so ``emit()`` can refuse the
event before anything reaches Kafka. Nothing is ever rounded or truncated.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_INT_LOW, _INT_HIGH = INT_RANGE
_CHECKED_BY_FASTAVRO = ("string", "boolean", "float", "double", "bytes")
"""Primitives whose non-null values fastavro refuses itself when they misfit."""


def misfits(schema: Any, record: Any, names: dict[str, Any] | None = None) -> list[str]:
    """Return why ``record`` does not fit ``schema`` (parsed JSON); empty if it does.

    Args:
        schema: The writer's schema as JSON (named types may be referenced by
            name after their definition, as in any ``.avsc``).
        record: The value in fastavro's shape (unions of records as
            ``(name, fields)`` tuples or plain dicts).
        names: ``named_types(schema)``, when the caller keeps it: walking the
            schema for its names costs as much as checking a record.
    """
    if names is None:
        names = named_types(schema)
    return _check(schema, record, "", names)


def named_types(schema: Any) -> dict[str, Any]:
    """The records, enums and fixed types of ``schema``, by full and short name."""
    names: dict[str, Any] = {}
    _collect(schema, None, names)
    return names


def _collect(schema: Any, namespace: str | None, names: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            name = str(schema["name"])
            namespace = schema.get("namespace", namespace)
            full = name if "." in name or not namespace else f"{namespace}.{name}"
            names[full] = names[name] = names[full.rsplit(".", 1)[-1]] = schema
            namespace = full.rpartition(".")[0] or None
            for field in schema.get("fields", []):
                _collect(field["type"], namespace, names)
        elif kind == "array":
            _collect(schema["items"], namespace, names)
        elif kind == "map":
            _collect(schema["values"], namespace, names)
        elif isinstance(kind, (dict, list)):
            _collect(kind, namespace, names)


def _where(path: str) -> str:
    return f"field {path}" if path else "the record"


def _check(schema: Any, value: Any, path: str, names: dict[str, Any]) -> list[str]:
    if isinstance(schema, str):
        if schema in names:
            schema = names[schema]
        elif value is not None and schema not in ("int", "long"):
            return []  # a primitive: fastavro checks its Python type
    if isinstance(schema, list):
        return _union(schema, value, path, names)
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in names):
        return _check(kind, value, path, names)

    if value is None:
        if kind == "null":
            return []
        return [f"{_where(path)} is null, but its type ({_label(schema)}) is not"]

    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "decimal":
        return _decimal(schema, value, path)
    if kind == "record":
        return _record(schema, value, path, names)
    if kind == "array" and isinstance(value, (list, tuple)):
        problems = []
        for i, item in enumerate(value):
            problems += _check(schema["items"], item, f"{path}[{i}]", names)
        return problems
    if kind == "map" and isinstance(value, dict):
        problems = []
        for key, item in value.items():
            problems += _check(schema["values"], item, f"{path}[{key!r}]", names)
        return problems
    if kind == "enum" and value not in schema["symbols"]:
        return [f"{_where(path)}: {value!r} is not a symbol of enum {schema['name']}"]
    if kind in ("int", "long") and logical is None and isinstance(value, int):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        if not low <= value <= high and not isinstance(value, bool):
            return [f"{_where(path)}: {value} is outside the range of an Avro {kind}"]
    return []


def _union(
    schema: list[Any], value: Any, path: str, names: dict[str, Any]
) -> list[str]:
    branches = [names.get(b, b) if isinstance(b, str) else b for b in schema]
    if value is None:
        if "null" in schema:
            return []
        return [f"{_where(path)} is null, but its type (union {schema}) is not"]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        short = value[0].rsplit(".", 1)[-1]
        for branch in branches:
            name = str(branch.get("name", "")) if isinstance(branch, dict) else ""
            if name.rsplit(".", 1)[-1] == short:
                label = f"{path}<{short}>" if path else short
                return _check(branch, value[1], label, names)
        return [f"{_where(path)}: {value[0]} is not a branch of its union"]
    others = [b for b in branches if b != "null"]
    if len(others) == 1:
        return _check(others[0], value, path, names)
    return []


def _record(
    schema: dict[str, Any], value: Any, path: str, names: dict[str, Any]
) -> list[str]:
    if not isinstance(value, dict):
        return [f"{_where(path)} is a {type(value).__name__}, not a record"]
    prefix = f"{path}." if path else ""
    problems = []
    for field in schema["fields"]:
        name = field["name"]
        if name not in value:
            if "default" not in field:
                problems.append(f"field {prefix}{name} is missing and has no default")
            continue
        kind, item = field["type"], value[name]
        if type(kind) is list and len(kind) == 2 and kind[0] == "null":
            if item is None:
                continue
            kind = kind[1]
        if type(kind) is str and item is not None:
            # Most fields: no need to walk them.
            if kind in _CHECKED_BY_FASTAVRO:
                continue
            if kind == "int" and type(item) is int and _INT_LOW <= item <= _INT_HIGH:
                continue
        problems += _check(kind, item, f"{prefix}{name}", names)
    return problems


def _decimal(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
    kind = f"decimal({precision},{scale})"
    if not isinstance(value, Decimal):
        return [f"{_where(path)}: {value!r} is not a Decimal ({kind})"]
    if not value.is_finite():
        return [f"{_where(path)}: {value} is not a finite number ({kind})"]
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    if places > scale:
        return [
            f"{_where(path)}: {value} has {places} decimal places, {kind} allows"
            f" {scale}; refused, not rounded"
        ]
    whole = max(0, len(digits) + exponent) if any(digits) else 0
    if whole > precision - scale:
        return [
            f"{_where(path)}: {value} has {whole} digits before the point,"
            f" {kind} allows {precision - scale}"
        ]
    return []


def _label(schema: Any) -> str:
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        return str(logical or schema.get("name") or schema.get("type"))
    return str(schema)
