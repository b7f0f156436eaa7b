"""Log lines: one event per line, coordinates as key=value pairs or JSON fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from booking_events import logs
from booking_events.settings import LogSettings


def record(
    msg: str = "assigned", exc: bool = False, **extra: object
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord(
        "sinks.connector", logging.WARNING, __file__, 1, msg, None, exc_info
    )
    rec.__dict__.update(extra)
    return rec


def test_text_is_time_level_logger_message_then_pairs() -> None:
    line = logs.TextFormatter().format(
        record(topic="t.validated", partition=3, offset=120, event_id="e-1")
    )

    time, level, logger, rest = line.split(" ", 3)
    assert time.endswith("Z") and "T" in time
    assert (level, logger) == ("WARNING", "sinks.connector")
    assert rest == "assigned topic=t.validated partition=3 offset=120 event_id=e-1"


def test_text_quotes_values_with_spaces_and_stays_on_one_line() -> None:
    line = logs.TextFormatter().format(record("two\nlines", exc=True, detail='a "b" c'))

    assert "\n" not in line
    assert 'detail="a \\"b\\" c"' in line
    assert "two\\nlines" in line
    assert 'exc="Traceback' in line and "ValueError: bad\\nvalue" in line


def test_json_has_the_same_fields() -> None:
    line = logs.JsonFormatter().format(
        record(exc=True, topic="t.raw", partition=0, offset=7)
    )

    event = json.loads(line)
    assert "\n" not in line
    assert event["level"] == "warning"
    assert event["logger"] == "sinks.connector"
    assert event["msg"] == "assigned"
    assert (event["topic"], event["partition"], event["offset"]) == ("t.raw", 0, 7)
    assert "ValueError" in event["exc"]


def test_lazy_arguments_are_merged_into_the_message() -> None:
    rec = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "retry in %.1f s", (2.0,), None
    )

    assert json.loads(logs.JsonFormatter().format(rec))["msg"] == "retry in 2.0 s"


def test_configure_replaces_its_own_handler_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        logs.configure(settings=LogSettings(format="text"))
        logs.configure(settings=LogSettings(format="json"))
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 1
        logging.getLogger("booking_events.test").info("hello", extra={"topic": "t"})
        err = capsys.readouterr().err.strip().splitlines()
        assert json.loads(err[-1])["topic"] == "t"
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)


def test_an_unknown_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("BOOKING_EVENTS_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        LogSettings()
