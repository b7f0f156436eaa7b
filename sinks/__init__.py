"""The ClickHouse sink: validated booking events into one ClickHouse table.

``ClickHouseSink`` (in ``connector``) consumes the validated topic and writes
each record exactly once into the events table; ``schema.ensure_tables``
creates that table, ``analytics.ensure_views`` the analysts' views over it,
and ``types`` derives its columns from the Avro contract.
"""

from sinks.config import SinkSettings
from sinks.connector import ClickHouseSink, SinkStats
from sinks.exceptions import (
    ClickHouseRejectedError,
    ClickHouseUnavailableError,
    DeadLetterError,
    DuplicateTokenError,
    RetriesExhaustedError,
    SinkDecodeError,
    SinkError,
)

__all__ = [
    "ClickHouseRejectedError",
    "ClickHouseSink",
    "ClickHouseUnavailableError",
    "DeadLetterError",
    "DuplicateTokenError",
    "RetriesExhaustedError",
    "SinkDecodeError",
    "SinkError",
    "SinkSettings",
    "SinkStats",
]
