"""Errors of the sink, and the one table that says which ClickHouse errors pass.

``classify`` turns any exception raised by clickhouse-connect into a
:class:`ClickHouseUnavailableError` (retriable: the same insert can succeed
later) or a :class:`ClickHouseRejectedError` (terminal: retrying the same rows
cannot help, a person must look). Retry loops ask only ``retriable``.
"""

from __future__ import annotations

from clickhouse_connect.driver import exceptions as ch_errors

from booking_events.exceptions import BookingEventsError

# ClickHouse server error codes after which the same request can succeed
# (src/Common/ErrorCodes.cpp). Everything else the server answers is terminal:
# syntax, unknown table or column, type mismatch, too-large values and so on.
RETRIABLE_CODES: dict[int, str] = {
    3: "UNEXPECTED_END_OF_FILE",
    159: "TIMEOUT_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    236: "ABORTED",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    252: "TOO_MANY_PARTS",
    285: "TOO_FEW_LIVE_REPLICAS",
    319: "UNKNOWN_STATUS_OF_INSERT",
    373: "SESSION_IS_LOCKED",
    394: "QUERY_WAS_CANCELLED",
    425: "SYSTEM_ERROR",
    999: "KEEPER_EXCEPTION",
}

# HTTP statuses of proxies and load balancers in front of ClickHouse that carry
# no ClickHouse error code.
RETRIABLE_HTTP_STATUSES = ("status 502", "status 503", "status 504")


class SinkError(BookingEventsError):
    """Base of the sink's errors."""


class ClickHouseUnavailableError(SinkError):
    """ClickHouse did not answer or asked to be called later."""

    retriable = True

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClickHouseRejectedError(SinkError):
    """ClickHouse refused the request; retrying the same request cannot help."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetriesExhaustedError(SinkError):
    """A retriable failure lasted longer than the retry budget."""


class SinkDecodeError(SinkError):
    """A record of the validated topic does not decode.

    Attributes:
        topic: Topic of the record.
        partition: Its partition.
        offset: Its offset.
    """

    def __init__(self, message: str, *, topic: str, partition: int, offset: int):
        super().__init__(f"{message} ({topic}[{partition}]@{offset})")
        self.topic = topic
        self.partition = partition
        self.offset = offset


class DeadLetterError(SinkError):
    """The dead-letter topic did not acknowledge a record; nothing was committed."""


class DuplicateTokenError(SinkError):
    """Rows stay missing although ClickHouse accepts their inserts.

    A token of theirs is in the table's deduplication log while no stored
    row carries it: rows were deleted after they were inserted (TRUNCATE,
    DROP PARTITION, a lightweight DELETE). Nothing is committed.
    """


class SchemaMappingError(SinkError):
    """An Avro type has no ClickHouse column type, or two payloads disagree."""


class IncompatibleColumnError(SinkError):
    """A writer schema gives a field a type its existing column cannot hold.

    ClickHouse could not apply the change safely (a string becoming an int, a
    non-null column that would receive NULL), so the sink stops before it
    stores or commits the record: the record and everything after it wait in
    Kafka until a person migrates the column and restarts the sink.

    Attributes:
        field: The field (and column) name.
        table_type: The column's type in ClickHouse.
        writer_type: The type the writer's schema maps to.
        schema_id: Registry id of the writer's schema.
        topic: Topic of the first record written with it.
        partition: Its partition.
        offset: Its offset.
    """

    def __init__(
        self,
        *,
        field: str,
        table_type: str,
        writer_type: str,
        schema_id: int,
        table: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        super().__init__(
            f"field {field!r} of schema id {schema_id} maps to {writer_type}, but"
            f" column {table}.{field} is {table_type}, which ClickHouse cannot"
            f" convert safely; stopping before {topic}[{partition}]@{offset}, no"
            " offset committed (the records wait in Kafka): migrate the column by"
            " hand (ALTER TABLE ... MODIFY COLUMN) or fix the producer, then"
            " restart the sink"
        )
        self.field = field
        self.table_type = table_type
        self.writer_type = writer_type
        self.schema_id = schema_id
        self.topic = topic
        self.partition = partition
        self.offset = offset


def classify(exc: BaseException, *, what: str) -> BookingEventsError:
    """Return the project error for a clickhouse-connect (or socket) exception.

    The project's own errors (a registry outage while decoding, say) pass
    through unchanged: they already know whether they are retriable.

    Args:
        exc: What the driver raised.
        what: The operation, for the message ("insert into db.t", ...).
    """
    if isinstance(exc, BookingEventsError):
        return exc
    code = getattr(exc, "code", None)
    name = getattr(exc, "name", None) or RETRIABLE_CODES.get(code or -1, "")
    label = f"code {code} {name}".strip() if code is not None else type(exc).__name__
    message = f"{what} failed ({label}): {_first_line(exc)}"

    if code is not None:
        if code in RETRIABLE_CODES:
            return ClickHouseUnavailableError(message, code=code)
        return ClickHouseRejectedError(message, code=code)

    # No server code: a transport failure (refused, reset, timed out) or an
    # HTTP error from something in front of ClickHouse.
    if isinstance(exc, ch_errors.OperationalError | ConnectionError | TimeoutError):
        return ClickHouseUnavailableError(message)
    if isinstance(exc, ch_errors.DatabaseError) and any(
        status in str(exc) for status in RETRIABLE_HTTP_STATUSES
    ):
        return ClickHouseUnavailableError(message)
    return ClickHouseRejectedError(message)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
