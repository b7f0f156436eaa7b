"""Reconciles what Kafka holds with what ClickHouse stored: the mechanics.

Every figure is read from the systems, never from a stage's counters:

* the raw topic is read record by record with ``read_committed``, so only
  records that were really written count (transaction markers and aborted
  records leave gaps in the offsets: watermark arithmetic would be wrong);
* the dead-letter topic is read the same way;
* ClickHouse answers the per-booking questions itself (``GROUP BY booking_id``)
  and returns only the offending bookings, plus one row count per event id.

An event is identified by its ``event_id``. A raw record too broken to decode
is identified by its coordinates ``topic/partition/offset``, which its
dead-letter record repeats in the ``dlq.source.*`` headers. Per distinct event
of the raw topic (see :func:`compare`):

* lost: neither stored nor dead-lettered;
* duplicated: stored more than once, or given more outcomes (rows plus
  dead-letter records) than the raw topic holds copies of it, or one raw record
  dead-lettered twice;
* unexpected: a row whose event was never produced.

The raw topic may hold one event twice (a producer retry, a replay): the
processor drops the repeat, so that is no failure while ClickHouse has the
event once. The ids are compared in memory, fine for millions of events.

:func:`reconcile` is the one-line check of the main job (``report``);
``booking_events.audit`` builds the full audit, with order checks and time
ranges, on the same functions.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import clickhouse_connect
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.exceptions import BookingEventsError
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import EventDecodeError, EventDeserializer

log = logging.getLogger(__name__)

TABLE = "booking_events"


class ReconcileError(BookingEventsError):
    """A topic could not be read to its end; retrying can help."""

    retriable = True


@dataclass(frozen=True)
class Reconciliation:
    """The outcome, with the offending ids."""

    produced: int
    stored: int
    dead_lettered: int
    lost_ids: list[str] = field(default_factory=list)
    duplicated_ids: list[str] = field(default_factory=list)
    duplicated: int = 0

    @property
    def lost(self) -> int:
        return len(self.lost_ids)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def line(self) -> str:
        """The one-line summary the main job prints."""
        return (
            f"produced={self.produced} stored={self.stored}"
            f" dead_lettered={self.dead_lettered} lost={self.lost}"
            f" duplicated={self.duplicated}"
        )


@dataclass(frozen=True, slots=True)
class OrderViolation:
    """A booking whose stored history is out of order.

    Attributes:
        booking_id: The booking.
        kind: ``seq_gap``, ``seq_repeated``, ``offset_order`` or ``partitions``.
        detail: What was found, for a person.
    """

    booking_id: str
    kind: str
    detail: str


# The comparison: pure functions, unit tested.


def compare(
    raw: Mapping[str, int],
    stored: Mapping[str, int],
    dead: Mapping[str, int],
    dead_repeats: Mapping[str, int] | None = None,
) -> tuple[list[str], dict[str, int], list[str]]:
    """Return (lost, duplicated, unexpected) from copies per event identity.

    Args:
        raw: Raw records per identity.
        stored: Rows per event id.
        dead: Dead-letter records per identity.
        dead_repeats: Extra dead-letter records of one and the same raw record.
    """
    dead_repeats = dead_repeats or {}
    lost = sorted(i for i in raw if not stored.get(i) and not dead.get(i))
    duplicated: dict[str, int] = {}
    for identity, copies in raw.items():
        rows, letters = stored.get(identity, 0), dead.get(identity, 0)
        # A row more than once is wrong whatever the raw topic holds; beyond
        # that, each raw copy may have one outcome (a repeat may be rejected).
        extra = max(rows - 1, 0) + max(
            min(rows, 1) + letters - copies, dead_repeats.get(identity, 0), 0
        )
        if extra:
            duplicated[identity] = extra
    unexpected = sorted(i for i in stored if i not in raw)
    return lost, duplicated, unexpected


def order_violations(
    booking_id: str,
    history: Sequence[tuple[int, int, int]],
    *,
    from_first: bool = True,
) -> list[OrderViolation]:
    """Check one booking's stored history.

    Args:
        history: ``(kafka_partition, kafka_offset, seq)`` of each row.
        from_first: The history must start at seq 1 (false for a time range,
            which may begin in the middle of a booking).
    """
    found = []
    in_offset_order = [seq for _, _, seq in sorted(history)]
    seqs = sorted(set(in_offset_order))
    if seqs:
        first = 1 if from_first else seqs[0]
        missing = sorted(set(range(first, seqs[-1] + 1)) - set(seqs))
        if missing:
            found.append(
                OrderViolation(booking_id, "seq_gap", f"seqs {missing} missing")
            )
    repeated = sorted(s for s, n in Counter(in_offset_order).items() if n > 1)
    if repeated:
        found.append(
            OrderViolation(booking_id, "seq_repeated", f"seqs {repeated} stored twice")
        )
    if any(b < a for a, b in itertools.pairwise(in_offset_order)):
        found.append(
            OrderViolation(
                booking_id,
                "offset_order",
                f"seqs in Kafka offset order are {in_offset_order}",
            )
        )
    partitions = sorted({p for p, _, _ in history})
    if len(partitions) > 1:
        found.append(
            OrderViolation(
                booking_id, "partitions", f"stored from partitions {partitions}"
            )
        )
    return found


# Reading Kafka.


def read_topic(
    kafka: KafkaSettings, topic: str, timeout_s: float = 60.0
) -> Iterator[Message]:
    """Yield every committed record of ``topic`` from the beginning to its end."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"booking-events-audit-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise ReconcileError(f"topic {topic!r}: {metadata.error}")
        partitions = [TopicPartition(topic, p, 0) for p in sorted(metadata.partitions)]
        pending = {tp.partition for tp in partitions}
        consumer.assign(partitions)
        idle_deadline = time.monotonic() + timeout_s
        while pending:
            # consume() waits for a full batch or its timeout: keep the timeout
            # short and bound the total wait for progress separately.
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            if messages:
                idle_deadline = time.monotonic() + timeout_s
            elif time.monotonic() > idle_deadline:
                raise ReconcileError(
                    f"no data from {topic!r} within {timeout_s} s;"
                    f" partitions {sorted(pending)} not read to the end"
                )
            for msg in messages:
                err = msg.error()
                if err is None:
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise ReconcileError(f"reading {topic!r}: {err}")
    finally:
        consumer.close()


def header(msg: Message, name: str) -> str | None:
    """The value of header ``name`` as text, None when absent."""
    headers = msg.headers() or []
    for key, value in headers.items() if isinstance(headers, dict) else headers:
        if key == name and value is not None:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            return raw.decode("utf-8", "replace")
    return None


def coordinates(msg: Message) -> str:
    return f"{msg.topic()}/{msg.partition()}/{msg.offset()}"


@dataclass
class KafkaSide:
    """What the raw and dead-letter topics hold, per event identity."""

    raw: Counter[str] = field(default_factory=Counter)
    raw_records: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    dead_repeats: Counter[str] = field(default_factory=Counter)
    dead_records: int = 0
    without_reason: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def _in_range(
    moment: datetime | None, since: datetime | None, until: datetime | None
) -> bool:
    if since is None and until is None:
        return True
    if moment is None:
        return False
    return (since is None or moment >= since) and (until is None or moment < until)


def read_kafka(
    kafka: KafkaSettings,
    registry: RegistrySettings,
    topics: TopicSettings,
    since: datetime | None = None,
    until: datetime | None = None,
) -> KafkaSide:
    """Read both topics once; keep what falls in ``[since, until)``."""
    deserializer = EventDeserializer(SchemaRegistryClient(registry.client_config()))
    side = KafkaSide()

    # Decode each raw record for its id and time; broken ones count by place.
    for msg in read_topic(kafka, topics.raw):
        try:
            record = deserializer.record(msg.value(), topics.raw)
            identity, occurred_at = str(record["event_id"]), record["occurred_at"]
        except EventDecodeError:
            identity, occurred_at = coordinates(msg), None
        if _in_range(occurred_at, since, until):
            side.raw[identity] += 1
            side.raw_records += 1

    # A dead-letter record names its event by id, else by the raw coordinates.
    sources: Counter[str] = Counter()
    for msg in read_topic(kafka, topics.dead_letter):
        source = "/".join(
            header(msg, f"dlq.source.{part}") or "?"
            for part in ("topic", "partition", "offset")
        )
        # The sink's dead letters come from the validated topic, with its headers.
        from_raw = header(msg, "dlq.source.topic") == topics.raw
        fallback = source if from_raw else header(msg, "event_id") or source
        identity = header(msg, "dlq.event_id") or fallback
        if identity not in side.raw:
            if since is None and until is None:
                side.unmatched.append(coordinates(msg))
            continue
        side.dead[identity] += 1
        side.dead_records += 1
        sources[source] += 1
        if sources[source] > 1:
            side.dead_repeats[identity] += 1
        if not header(msg, "dlq.reason"):
            side.without_reason.append(f"{coordinates(msg)} ({identity})")
    return side


# Asking ClickHouse.


def _range_sql(since: datetime | None, until: datetime | None) -> str:
    conditions = []
    if since is not None:
        conditions.append("occurred_at >= toDateTime64({since:String}, 3, 'UTC')")
    if until is not None:
        conditions.append("occurred_at < toDateTime64({until:String}, 3, 'UTC')")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _range_params(since: datetime | None, until: datetime | None) -> dict[str, str]:
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    params = {}
    if since is not None:
        params["since"] = since.astimezone(UTC).strftime(fmt)[:-3]
    if until is not None:
        params["until"] = until.astimezone(UTC).strftime(fmt)[:-3]
    return params


ORDER_SQL = """
SELECT booking_id,
       groupArray((kafka_partition, kafka_offset, seq)) AS history,
       arrayMap(r -> r.3, arraySort(history)) AS seqs_by_offset,
       count() AS n_rows,
       uniqExact(seq) AS n_seqs,
       min(seq) AS first_seq,
       max(seq) AS last_seq
FROM {table}{where}
GROUP BY booking_id
HAVING n_seqs != last_seq - first_seq + 1
    OR n_rows != n_seqs
    OR uniqExact(kafka_partition) > 1
    OR seqs_by_offset != arraySort(seqs_by_offset){from_first}
ORDER BY booking_id
"""
"""Only the offending bookings leave ClickHouse; Python says what is wrong."""


def read_clickhouse(
    clickhouse: ClickHouseSettings,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    check_order: bool = True,
) -> tuple[Counter[str], list[OrderViolation]]:
    """Rows per event id, and the order violations, of ``[since, until)``.

    A table that does not exist yet holds no rows.
    """
    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    table = f"`{clickhouse.database}`.`{TABLE}`"
    where, params = _range_sql(since, until), _range_params(since, until)
    try:
        if not int(str(client.command(f"EXISTS TABLE {table}"))):
            log.warning("table %s does not exist: no event counts as stored", table)
            return Counter(), []
        rows = client.query(
            f"SELECT toString(event_id), count() FROM {table}{where} GROUP BY event_id",
            parameters=params,
        ).result_rows
        stored: Counter[str] = Counter({eid: n for eid, n in rows})
        violations: list[OrderViolation] = []
        if check_order:
            whole = since is None and until is None
            sql = ORDER_SQL.format(
                table=table,
                where=where,
                from_first=" OR first_seq != 1" if whole else "",
            )
            for booking_id, history, *_ in client.query(
                sql, parameters=params
            ).result_rows:
                violations += order_violations(
                    booking_id, [tuple(r) for r in history], from_first=whole
                )
    finally:
        client.close()
    return stored, violations


def reconcile(
    kafka: KafkaSettings,
    registry: RegistrySettings,
    clickhouse: ClickHouseSettings,
    topics: TopicSettings,
) -> Reconciliation:
    """Read the raw and dead-letter topics and the table; compare them.

    ``produced`` counts distinct events (a record broken beyond decoding
    counts as one). Unexpected rows (never produced) count as duplicated.
    """
    side = read_kafka(kafka, registry, topics)
    stored, _ = read_clickhouse(clickhouse, check_order=False)
    lost, duplicated, unexpected = compare(
        side.raw, stored, side.dead, side.dead_repeats
    )
    result = Reconciliation(
        produced=len(side.raw),
        stored=sum(stored.values()),
        dead_lettered=side.dead_records + len(side.unmatched),
        lost_ids=lost,
        duplicated_ids=sorted([*duplicated, *unexpected]),
        duplicated=sum(duplicated.values()) + sum(stored[i] for i in unexpected),
    )
    log.info(
        "reconciled",
        extra={
            "produced": result.produced,
            "stored": result.stored,
            "dead_lettered": result.dead_lettered,
            "lost": result.lost,
            "duplicated": result.duplicated,
        },
    )
    return result
