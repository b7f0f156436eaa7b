"""CI's schema gate: the released versions registered as in production, then
``booking-events schemas check`` run against the working tree's .avsc files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from booking_events import schema_registry
from booking_events.settings import RegistrySettings, TopicSettings

pytestmark = pytest.mark.integration

RELEASED = Path(__file__).resolve().parents[2] / "schemas" / "released"


def register_released(topics: TopicSettings) -> None:
    registry = schema_registry.client(RegistrySettings())
    paths = sorted(RELEASED.glob("v*.json"), key=lambda p: int(p.stem[1:]))
    for path in paths:
        schema_registry.register(
            registry, path.read_text(), schema_registry.subjects(topics)
        )


def schemas_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "booking_events", "schemas", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_working_tree_passes_the_check_against_the_releases(
    topics: TopicSettings, pipeline_env: dict[str, str]
) -> None:
    register_released(topics)

    done = schemas_check(pipeline_env)

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_fails_naming_the_field_and_the_rule(
    topics: TopicSettings, pipeline_env: dict[str, str]
) -> None:
    # A release in which hotel was an int: the tree's string cannot read it.
    breaking = json.loads((RELEASED / "v1.json").read_text())
    payload = next(f for f in breaking["fields"] if f["name"] == "payload")
    created = next(r for r in payload["type"] if r["name"] == "BookingCreated")
    next(f for f in created["fields"] if f["name"] == "hotel")["type"] = "int"
    register_released(topics)
    registry = schema_registry.client(RegistrySettings())
    subjects = schema_registry.subjects(topics)
    schema_registry.register(registry, json.dumps(breaking), subjects, level="NONE")
    for subject in subjects:
        registry.set_compatibility(subject, "BACKWARD")

    done = schemas_check(pipeline_env)

    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "hotel" in output and "BACKWARD" in output, output
    assert "type changed from int to string" in output, output
