"""Loads the ``.avsc`` files into the one schema registered for each topic.

``avro/BookingEvent.avsc`` is the envelope; its ``payload`` union names the
payload records, each in a file of its own. The loader inlines those files so
the registry receives a single self-contained schema (no schema references,
which not every Confluent-compatible registry resolves the same way).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

CONTRACT_VERSION = 1
"""Version of the event contract this code writes into ``schema_version``."""

NAMESPACE = "booking_events"
PAYLOAD_NAMES = (
    "BookingCreated",
    "BookingModified",
    "RoomAssigned",
    "BookingCancelled",
    "GuestCheckedIn",
    "GuestCheckedOut",
)


def _read(name: str) -> dict[str, Any]:
    text = resources.files("schemas").joinpath("avro", f"{name}.avsc").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def load_event_schema() -> dict[str, Any]:
    """Return the envelope schema with every payload record inlined."""
    envelope = _read("BookingEvent")
    payload = next(f for f in envelope["fields"] if f["name"] == "payload")
    inlined = []
    for ref in payload["type"]:
        short = ref.rsplit(".", 1)[-1]
        if short not in PAYLOAD_NAMES:
            raise ValueError(f"BookingEvent.avsc names unknown payload type {ref!r}")
        inlined.append(_read(short))
    payload["type"] = inlined
    return envelope


EVENT_SCHEMA: str = json.dumps(load_event_schema(), separators=(",", ":"))
"""The registered schema, as canonical-ish JSON text."""

PAYLOAD_SCHEMAS: dict[str, dict[str, Any]] = {
    s["name"]: s
    for s in next(f for f in load_event_schema()["fields"] if f["name"] == "payload")[
        "type"
    ]
}
"""Payload record schemas by short name."""
