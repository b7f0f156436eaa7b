"""The processor's dead-letter reasons: one list, the code, the README, metrics."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from prometheus_client import REGISTRY

from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from processors.app import create_app
from processors.config import ProcessorSettings
from processors.rules import DEAD_LETTER_REASONS
from schemas.exceptions import EventDecodeError, UnknownSchemaError

ROOT = Path(__file__).resolve().parents[2]


def codes_written_by_the_processor() -> set[str]:
    """First arguments of every ``Violation(...)`` in processors/, as literals."""
    codes = {EventDecodeError.reason, UnknownSchemaError.reason}
    for path in (ROOT / "processors").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Violation"
            ):
                first = node.args[0]
                if isinstance(first, ast.Attribute) and first.attr == "reason":
                    continue  # a decode error's own reason, counted above
                assert isinstance(first, ast.Constant), f"{path.name}:{node.lineno}"
                codes.add(first.value)
    return codes


def codes_in_the_readme() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Dead-letter topic", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_list_is_exactly_what_the_code_writes() -> None:
    assert len(set(DEAD_LETTER_REASONS)) == len(DEAD_LETTER_REASONS)
    assert set(DEAD_LETTER_REASONS) == codes_written_by_the_processor()


def test_the_readme_table_names_every_reason() -> None:
    assert codes_in_the_readme() == {*DEAD_LETTER_REASONS, "sink_decode_failed"}


def test_every_reason_is_a_series_from_the_start() -> None:
    settings = ProcessorSettings()
    create_app(settings, KafkaSettings(), RegistrySettings(), TopicSettings())

    labelled = {
        sample.labels["reason"]
        for metric in REGISTRY.collect()
        if metric.name == "booking_events_processor_dead_lettered"
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert labelled >= set(DEAD_LETTER_REASONS)
