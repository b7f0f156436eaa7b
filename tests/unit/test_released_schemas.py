"""The working tree's contract stays BACKWARD compatible with every release
(offline, with the same rules ``schemas check`` explains failures with)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from booking_events.schema_registry import explain
from schemas import load_event_schema

RELEASED = Path(__file__).resolve().parents[2] / "schemas" / "released"


def released() -> list[Path]:
    return sorted(RELEASED.glob("v*.json"), key=lambda p: int(p.stem[1:]))


def test_there_is_a_released_schema() -> None:
    assert [p.name for p in released()][:1] == ["v1.json"]


@pytest.mark.parametrize("path", released(), ids=lambda p: p.stem)
def test_the_working_tree_reads_every_released_version(path: Path) -> None:
    assert explain(json.loads(path.read_text()), load_event_schema(), "BACKWARD") == []
