"""Readable reasons for incompatible schema changes (no registry involved)."""

from __future__ import annotations

import copy
import json
from typing import Any

from booking_events.schema_registry import explain, incompatibilities
from schemas import EVENT_SCHEMA


def contract() -> dict[str, Any]:
    return copy.deepcopy(json.loads(EVENT_SCHEMA))


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_same_schema_is_compatible_both_ways() -> None:
    assert explain(contract(), contract(), "FULL_TRANSITIVE") == []


def test_field_added_with_a_default_is_backward_compatible() -> None:
    new = contract()
    new["fields"].append({"name": "tenant", "type": "string", "default": ""})
    assert explain(contract(), new, "FULL") == []


def test_field_added_without_a_default_is_named() -> None:
    new = contract()
    new["fields"].append({"name": "tenant", "type": "string"})
    assert incompatibilities(contract(), new, new_reads_old=True) == [
        "field tenant: added without a default"
    ]


def test_nested_payload_field_is_named_with_its_record() -> None:
    new = contract()
    created = field(new, "payload")["type"][0]
    created["fields"].append({"name": "loyalty", "type": "int"})
    assert incompatibilities(contract(), new, new_reads_old=True) == [
        "field payload<BookingCreated>.loyalty: added without a default"
    ]


def test_type_change_is_named_and_promotion_allowed() -> None:
    new = contract()
    field(new, "seq")["type"] = "string"
    assert explain(contract(), new, "BACKWARD") == [
        "BACKWARD: field seq: type changed from long to string, which Avro cannot"
        " convert; the new schema cannot read events already written"
    ]
    promoted = contract()
    field(promoted, "schema_version")["type"] = "long"
    assert explain(contract(), promoted, "BACKWARD") == []


def test_enum_symbol_removed_breaks_backward_added_breaks_forward() -> None:
    fewer = contract()
    field(fewer, "event_type")["type"]["symbols"].remove("ROOM_ASSIGNED")
    [problem] = incompatibilities(contract(), fewer, new_reads_old=True)
    assert "field event_type: enum EventType symbol(s) ROOM_ASSIGNED removed" in problem
    assert incompatibilities(contract(), fewer, new_reads_old=False) == []

    more = contract()
    field(more, "event_type")["type"]["symbols"].append("NO_SHOW")
    assert incompatibilities(contract(), more, new_reads_old=True) == []
    [problem] = incompatibilities(contract(), more, new_reads_old=False)
    assert "NO_SHOW added" in problem


def test_removed_field_breaks_forward_only_when_it_has_no_default() -> None:
    new = contract()
    new["fields"].remove(field(new, "source"))
    assert explain(contract(), new, "BACKWARD") == []
    assert explain(contract(), new, "FORWARD") == [
        "FORWARD: field source: removed, and the registered schema gives it no"
        " default; consumers on the registered schema cannot read new events"
    ]
    without_version = contract()
    without_version["fields"].remove(field(without_version, "schema_version"))
    assert explain(contract(), without_version, "FORWARD") == []


def test_union_branch_removed_is_named() -> None:
    new = contract()
    field(new, "payload")["type"].pop()
    assert incompatibilities(contract(), new, new_reads_old=True) == [
        "field payload: record GuestCheckedOut removed from the union"
    ]
