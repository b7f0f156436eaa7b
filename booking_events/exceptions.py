"""The root of every error this project raises on purpose."""

from __future__ import annotations

import re


class BookingEventsError(Exception):
    """Base class of the project's errors.

    ``retriable`` tells a retry loop whether trying the same thing again can help;
    the loop asks only that, never the message.
    """

    retriable: bool = False


class ConfigurationError(BookingEventsError):
    """A setting is missing or wrong; the message names it and what to do."""


class ServiceError(BookingEventsError):
    """A service (Kafka, the registry, ClickHouse) failed a request.

    ``retriable`` is true when the service could not be reached at all, false
    when it answered with an error (bad SQL, a refused request).
    """

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: messages never carry credentials."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# "Code: 62. DB::Exception: Syntax error: ... (SYNTAX_ERROR) (version 26.9.2.1)"
_CLICKHOUSE_EXCEPTION = re.compile(
    r"Code: (?P<code>\d+)\. DB::Exception: (?P<text>.*?)"
    r"\s*\((?P<name>[A-Z][A-Z0-9_]+)\)"
    r"(?:\s*\(version [^)]*\))?(?:\s*\(for url [^)]*\))?\s*$",
    re.DOTALL,
)
_CLICKHOUSE_HINTS = {
    81: "the sink creates the database on its first run: run `booking-events"
    " pipeline` (or `sink`) first, or set BOOKING_EVENTS_CLICKHOUSE_DATABASE",
    516: "check BOOKING_EVENTS_CLICKHOUSE_USERNAME and _PASSWORD",
}
_MAX_DETAIL = 300


def clickhouse_error(exc: Exception, url: str) -> ServiceError:
    """Translate a clickhouse-connect error into one readable line.

    A server error keeps ClickHouse's code and name (``SYNTAX_ERROR (code 62)``)
    and its text without the long list of expected tokens; a connection error
    says where ClickHouse was expected and how to check it.
    """
    from clickhouse_connect.driver.exceptions import DatabaseError

    message = str(exc)
    match = _CLICKHOUSE_EXCEPTION.search(message)
    if isinstance(exc, DatabaseError) and match:
        code = int(match["code"])
        text = " ".join(match["text"].split()).split(". Expected one of:")[0]
        text = text.rstrip(".")
        if len(text) > _MAX_DETAIL:
            text = text[:_MAX_DETAIL] + "..."
        line = f"ClickHouse refused the request: {match['name']} (code {code}): {text}"
        hint = _CLICKHOUSE_HINTS.get(code)
        return ServiceError(f"{line}; {hint}" if hint else line)
    reason = _connection_reason(message)
    return ServiceError(
        f"ClickHouse at {_without_userinfo(url)} could not be reached ({reason}):"
        " is it running? Check with `booking-events stack status`, or set"
        " BOOKING_EVENTS_CLICKHOUSE_URL",
        retriable=True,
    )


def kafka_error(exc: Exception, bootstrap_servers: str) -> ServiceError:
    """Translate a confluent-kafka error into one readable line with a hint."""
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return ServiceError(f"Kafka at {bootstrap_servers}: {exc}")
    unreachable = error.code() in (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
    )
    if not unreachable:
        return ServiceError(
            f"Kafka at {bootstrap_servers} refused the request: {error.str()}",
            retriable=error.retriable(),
        )
    return ServiceError(
        f"Kafka at {bootstrap_servers} could not be reached ({error.str()}):"
        " is it running? Check with `booking-events stack status`, or set"
        " BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS",
        retriable=True,
    )


def _connection_reason(message: str) -> str:
    """The short cause inside a urllib3 message ("Connection refused")."""
    match = re.search(r"\[Errno -?\d+\] ([^\"')]+)", message)
    if match:
        return match[1].strip()
    if "timed out" in message.lower():
        return "timed out"
    return " ".join(message.split())[:_MAX_DETAIL]
