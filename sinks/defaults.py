"""Avro field defaults as the values and the SQL the sink needs.

A field's Avro ``default`` is JSON in the type's *underlying* encoding: a
``date`` default is a day count, a ``timestamp-millis`` one milliseconds, a
``decimal`` one a string of raw bytes (specification, "Complex Types" and
"Logical Types"). fastavro does not convert defaults to logical values when it
resolves a record, so the sink does it here, for two uses:

* :func:`python_value`: the value a row gets when its writer's schema lacks
  the field (an old producer) while a newer schema gives it a default;
* :func:`sql_default`: the ``DEFAULT`` expression of the column added for the
  field, which is what rows stored *before* the column existed return.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sinks.exceptions import SchemaMappingError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)


def python_value(avro_type: Any, default: Any, names: dict[str, Any]) -> Any:
    """Return the value of ``default`` (JSON) for a field of ``avro_type``.

    Raises:
        SchemaMappingError: The default does not fit the type.
    """
    if isinstance(avro_type, str) and avro_type in names:
        avro_type = names[avro_type]
    if isinstance(avro_type, list):
        # A union's default belongs to its first branch.
        return python_value(avro_type[0], default, names) if avro_type else None
    if default is None:
        return None
    if not isinstance(avro_type, dict):
        return default
    logical = avro_type.get("logicalType")
    kind = avro_type.get("type")
    if logical == "date":
        return _EPOCH_DAY + timedelta(days=int(default))
    if logical == "timestamp-millis":
        return _EPOCH + timedelta(milliseconds=int(default))
    if logical == "timestamp-micros":
        return _EPOCH + timedelta(microseconds=int(default))
    if logical == "uuid":
        return uuid.UUID(str(default))
    if logical == "decimal":
        raw = str(default).encode("latin-1")
        unscaled = int.from_bytes(raw, "big", signed=True)
        return Decimal(unscaled).scaleb(-int(avro_type.get("scale", 0)))
    if kind == "array":
        return [python_value(avro_type["items"], v, names) for v in default]
    if kind == "map":
        return {
            k: python_value(avro_type["values"], v, names) for k, v in default.items()
        }
    if kind == "record":
        return {
            f["name"]: python_value(
                f["type"], default.get(f["name"], f.get("default")), names
            )
            for f in avro_type["fields"]
        }
    if isinstance(kind, (dict, list)):
        return python_value(kind, default, names)
    return default


def sql_literal(value: Any, ch_type: str) -> str | None:
    """Return ``value`` as a ClickHouse expression of ``ch_type``.

    None means "the type's own default is that value" (NULL, an empty array or
    map), so no ``DEFAULT`` clause is needed.

    Raises:
        SchemaMappingError: A non-empty array, map or tuple default, which the
            sink does not write as SQL.
    """
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        text = repr(value) if isinstance(value, float) else str(value)
        return f"CAST('{text}' AS {_base(ch_type)})"
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"CAST('{text}' AS {_base(ch_type)})"
    if isinstance(value, (date, uuid.UUID)):
        return f"CAST('{value}' AS {_base(ch_type)})"
    if isinstance(value, str):
        quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return quoted
    raise SchemaMappingError(
        f"a default of {value!r} for a {ch_type} column cannot be written as SQL;"
        " give the field an empty or null default"
    )


def sql_default(
    ch_type: str, by_event_type: dict[str, Any], every_type: bool
) -> str | None:
    """The ``DEFAULT`` expression of a column, or None for the type's default.

    Args:
        ch_type: The column's type.
        by_event_type: event_type value -> the field's default for that type.
        every_type: Every event type carries the field (envelope fields, or a
            payload field in every payload record).
    """
    literals = {t: sql_literal(v, ch_type) for t, v in by_event_type.items()}
    distinct = set(literals.values())
    if every_type and len(distinct) == 1:
        return distinct.pop()
    branches = [
        f"event_type = '{event_type}', {literal}"
        for event_type, literal in sorted(literals.items())
        if literal is not None
    ]
    if not branches:
        return None
    return f"multiIf({', '.join(branches)}, NULL)"


def _base(ch_type: str) -> str:
    for wrapper in ("LowCardinality(", "Nullable("):
        while ch_type.startswith(wrapper):
            ch_type = ch_type[len(wrapper) : -1]
    return ch_type
