"""One logging setup for every ``booking-events`` command: one event per line.

Coordinates travel as ``extra=`` fields, never inside the message::

    log.info("assigned", extra={"topic": topic, "partition": 3, "offset": 120})

``BOOKING_EVENTS_LOG_FORMAT=text`` (the default) writes
``TIME LEVEL LOGGER MESSAGE key=value ...``; ``json`` writes one JSON object
per line with ``time``, ``level``, ``logger``, ``msg`` and the same fields.
A traceback goes into the ``exc`` field, so it never spans several lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from booking_events.settings import LogSettings

# Attributes every LogRecord has; anything else on a record came from extra=.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Client libraries log every request at INFO, and clickhouse-connect and
# urllib3 warn with a traceback before raising the error the command line
# explains anyway; without --debug they keep only what is worse.
NOISY_LOGGERS = {
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,
    "kafka": logging.WARNING,
    "aiokafka": logging.WARNING,
    "clickhouse_connect": logging.ERROR,
    "urllib3": logging.ERROR,
    "librdkafka": logging.WARNING,
}

KAFKA_CLIENT_LOG = logging.getLogger("librdkafka")
"""Logger of librdkafka's own lines: pass it as a client's ``logger``.

Without it librdkafka writes ``%3|...|FAIL|...`` lines straight to stderr,
past the formatter, and a JSON log stream stops being JSON. The lines arrive
when the client is polled (consume, poll, flush).
"""


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``extra=`` fields, in the order they were given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or None


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n\r\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER MESSAGE key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\n", "\\n")
        parts = [_time(record), record.levelname, record.name, message]
        pairs = dict(fields(record))
        exc = _exception(self, record)
        if exc:
            pairs["exc"] = exc
        parts.extend(f"{k}={_logfmt_value(v)}" for k, v in pairs.items())
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update(fields(record))
        exc = _exception(self, record)
        if exc:
            event["exc"] = exc
        return json.dumps(event, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_json = False


def json_lines() -> bool:
    """True when :func:`configure` set up JSON lines: stderr takes nothing else."""
    return _json


def configure(debug: bool = False, settings: LogSettings | None = None) -> None:
    """Send every logger's records to stderr in the configured format.

    Replaces the handler an earlier call installed (tests run several commands
    in one process) and leaves other handlers (pytest's) alone.
    """
    global _json
    settings = settings or LogSettings()
    _json = settings.format == "json"
    handler = _StderrHandler()
    formatter = JsonFormatter() if settings.format == "json" else TextFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy, level in NOISY_LOGGERS.items():
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else level)
