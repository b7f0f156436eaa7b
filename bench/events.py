"""Pre-generated events: the real bookings, repeated to the volume, encoded once.

Every arm reads the same bytes. The real ``hotel_rates`` bookings are repeated
with new ids and dates shifted by 52 weeks per copy (``producers.loadgen``),
turned into lifecycles, merged in time order, cut to the requested count and
encoded once in Confluent wire format with the schema registered in the
stack's registry. The file holds length-prefixed (key, value) pairs.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.settings import RegistrySettings
from producers.hotel_rates import events_in_time_order, lifecycle, load_bookings
from producers.loadgen import with_copies
from schemas import EventSerializer

log = logging.getLogger(__name__)

MAGIC = b"BEV1"
SUBJECT_TOPIC = "bench-events"
"""Topic whose subject the schema is registered under; ids are registry-wide."""

_LENGTHS = struct.Struct(">II")

Record = tuple[bytes, bytes]


def copies_for(events: int, events_per_pass: int) -> int:
    """Synthetic copies needed on top of the real bookings to reach ``events``."""
    if events_per_pass <= 0:
        raise ValueError("the data set derived no events")
    return max(0, math.ceil(events / events_per_pass) - 1)


def generate(path: Path, events: int, registry: RegistrySettings) -> int:
    """Write ``events`` encoded records to ``path``; return how many were written."""
    bookings = load_bookings()
    per_pass = sum(len(lifecycle(b)) for b in bookings)
    copies = copies_for(events, per_pass)
    ordered = events_in_time_order(with_copies(bookings, copies))[:events]
    serializer = EventSerializer(
        SchemaRegistryClient(registry.client_config()), auto_register=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(MAGIC)
        for event in ordered:
            key = event.booking_id.encode()
            value = serializer.serialize(event, SUBJECT_TOPIC)
            out.write(_LENGTHS.pack(len(key), len(value)))
            out.write(key)
            out.write(value)
    log.info(
        "events generated",
        extra={
            "count": len(ordered),
            "copies": copies,
            "bytes": path.stat().st_size,
            "path": str(path),
        },
    )
    return len(ordered)


def read(path: Path) -> list[Record]:
    """All records of a file written by :func:`generate`, in order."""
    return list(iter_records(path.read_bytes()))


def iter_records(data: bytes) -> Iterator[Record]:
    """Parse the file format; raise ``ValueError`` on a damaged file."""
    if data[:4] != MAGIC:
        raise ValueError("not a bench events file (bad magic)")
    pos, end = 4, len(data)
    while pos < end:
        if pos + _LENGTHS.size > end:
            raise ValueError(f"truncated record header at byte {pos}")
        key_len, value_len = _LENGTHS.unpack_from(data, pos)
        pos += _LENGTHS.size
        if pos + key_len + value_len > end:
            raise ValueError(f"truncated record at byte {pos}")
        key = data[pos : pos + key_len]
        pos += key_len
        yield key, data[pos : pos + value_len]
        pos += value_len


def encode_records(records: list[Record]) -> bytes:
    """The file format of ``records`` (for tests and small fixtures)."""
    parts = [MAGIC]
    for key, value in records:
        parts += [_LENGTHS.pack(len(key), len(value)), key, value]
    return b"".join(parts)
