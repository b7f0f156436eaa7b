"""What the log lines say: dead letters one line each, coordinates as fields."""

from __future__ import annotations

import ast
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message
from factories import booking_created

from booking_events import logs
from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from producers import BookingEventProducer
from sinks.dead_letter import DeadLetterSender

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("booking_events", "processors", "sinks", "producers", "schemas", "bench")
PENDING: set[str] = set()
"""Files exempt from the scan while their log lines are being moved to fields."""
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
PAIR = re.compile(r"\b[a-z_]+=%")


class _Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def _router(topics: TopicSettings):  # type: ignore[no-untyped-def]
    from processors.config import ProcessorSettings
    from processors.router import EventRouter

    return EventRouter(None, _Table(), None, ProcessorSettings(), topics)  # type: ignore[arg-type]


def _topics() -> TopicSettings:
    prefix = f"u{uuid.uuid4().hex[:8]}"
    return TopicSettings(
        raw=f"{prefix}.raw",
        validated=f"{prefix}.validated",
        dead_letter=f"{prefix}.dead-letter",
    )


def _dead_letter_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "dead-letter topic" in r.getMessage()]


def test_each_dead_letter_of_the_processor_is_one_warning_with_coordinates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from processors.routing import SourceRecord
    from schemas import EventDecodeError

    topics = _topics()
    router = _router(topics)
    caplog.set_level(logging.INFO, logger="processors")
    event = booking_created(booking_id="B1")
    wrong_key = SourceRecord(topics.raw, 2, 40, key=b"B9", value=b"")
    garbage = SourceRecord(topics.raw, 3, 41, key=b"B2", value=b"x")

    router.plan(wrong_key, event)
    router.plan(garbage, EventDecodeError("not Confluent wire format"))

    lines = _dead_letter_lines(caplog)
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]
    first, second = (logs.fields(r) for r in lines)
    assert first["topic"] == topics.raw
    assert (first["partition"], first["offset"]) == (2, 40)
    assert first["event_id"] == str(event.event_id)
    assert first["reason"] == "key_mismatch"
    assert "booking_id" in first["detail"]
    assert first["dead_letter_topic"] == topics.dead_letter
    assert (second["partition"], second["offset"], second["reason"]) == (
        3,
        41,
        "malformed",
    )
    assert "event_id" not in second  # nothing decoded, no id to name


def test_each_dead_letter_of_the_sink_is_one_error_naming_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A client object only: nothing listens on the port, nothing is delivered.
    sender = DeadLetterSender(
        KafkaSettings(bootstrap_servers="127.0.0.1:9"), "t.dead-letter", 1000
    )
    msg = Message(
        topic="t.validated",
        partition=4,
        offset=17,
        key=b"B1",
        value=b"\x00bad",
        headers=[("event_id", b"e-17"), ("event_type", b"BOOKING_CREATED")],
    )
    caplog.set_level(logging.INFO, logger="sinks")
    try:
        sender.send(msg, "record does not form a row: KeyError('seq')")
    finally:
        assert sender._producer is not None
        sender._producer.purge()
        sender._producer = None

    [line] = _dead_letter_lines(caplog)
    assert line.levelno == logging.ERROR
    fields = logs.fields(line)
    assert {k: fields[k] for k in ("topic", "partition", "offset", "event_id")} == {
        "topic": "t.validated",
        "partition": 4,
        "offset": 17,
        "event_id": "e-17",
    }
    assert fields["reason"] == "sink_decode_failed"
    assert "KeyError" in fields["detail"]


def _polled_until_logged(
    client: Any, caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        client.poll(0.2)
        lines = [r for r in caplog.records if r.name == "librdkafka"]
        if lines:
            return lines
    return []


def test_the_kafka_clients_own_lines_go_through_logging(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.WARNING, logger="librdkafka")
    producer = BookingEventProducer(
        KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        RegistrySettings(url="mock://log-lines-tests"),
        TopicSettings(raw=f"u{uuid.uuid4().hex[:8]}.raw"),
        handle_sigterm=False,
    )
    producer.start()
    sender = DeadLetterSender(
        KafkaSettings(bootstrap_servers="127.0.0.1:9"), "t.dead-letter", 1000
    )
    try:
        producer.emit(booking_created(booking_id="B1"))
        # "Connect to ... failed": a record of ours, not a raw stderr line.
        assert _polled_until_logged(producer._producer, caplog)
        caplog.clear()
        sender.send(Message(topic="t", partition=0, offset=0, value=b"x"), "bad")
        assert _polled_until_logged(sender._producer, caplog)
    finally:
        for client in (producer._producer, sender._producer):
            if client is not None:
                client.purge()
        producer._producer = sender._producer = None
    assert "|FAIL|" not in capfd.readouterr().err


def _log_messages(path: Path) -> list[tuple[int, str, bool]]:
    """(line, literal text, is an f-string) of each log call's message."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"log", "logger", "logging"}
            and node.args
        ):
            continue
        message = node.args[0]
        text = "".join(
            n.value
            for n in ast.walk(message)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        )
        formatted = any(isinstance(n, ast.JoinedStr) for n in ast.walk(message))
        found.append((node.lineno, text, formatted))
    return found


def test_log_messages_carry_no_key_value_pairs_and_no_f_strings() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in PENDING:
                continue
            for line, text, formatted in _log_messages(path):
                if formatted or PAIR.search(text):
                    offenders.append(f"{name}:{line}: {text!r}")
    # Pairs go in extra= (booking_events.logs), so JSON gets them as fields.
    assert offenders == []
