"""The audit: is every event stored once, in order, or dead-lettered with a reason?

``booking-events audit`` runs :func:`audit`; the fault tests end with it. It
reads both topics record by record and asks ClickHouse per booking (see
``booking_events.reconcile`` for how each side is read and compared), then
judges:

* nothing lost, nothing duplicated, no row without a produced event;
* every booking's stored seqs without gaps (from 1 over the whole history),
  no seq twice, Kafka offset order equal to seq order, one partition;
* every dead-letter record with a ``dlq.reason``.

Raw-side duplicates (the same event id in two raw records) are reported for
information only: the processor drops repeated deliveries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from booking_events.reconcile import (
    OrderViolation,
    compare,
    read_clickhouse,
    read_kafka,
)
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)

log = logging.getLogger(__name__)

__all__ = ["AuditReport", "OrderViolation", "audit"]


@dataclass(frozen=True)
class AuditReport:
    """What the audit found; ``clean`` only when nothing is wrong.

    Counts are of the audited range (all history when ``since`` and ``until``
    are None). Id lists are sorted; ``duplicated`` maps an event id to its
    extra copies.
    """

    produced: int
    raw_records: int
    stored: int
    dead_lettered: int
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    order_violations: list[OrderViolation] = field(default_factory=list)
    dead_lettered_without_reason: list[str] = field(default_factory=list)
    duplicates_in_raw: dict[str, int] = field(default_factory=dict)
    unmatched_dead_letters: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.order_violations
            or self.dead_lettered_without_reason
        )

    def summary(self) -> str:
        """A few lines for a person: the range, the counts, the verdict."""
        span = (
            "whole history"
            if self.since is None and self.until is None
            else f"occurred_at in [{_iso(self.since)}, {_iso(self.until)})"
        )
        return "\n".join(
            [
                f"audit of {span}",
                f"  produced          {self.produced} distinct events"
                f" in {self.raw_records} raw records",
                f"  stored            {self.stored} rows",
                f"  dead-lettered     {self.dead_lettered} records",
                f"  lost              {len(self.lost)}",
                f"  duplicated        {len(self.duplicated)} events,"
                f" {sum(self.duplicated.values())} extra copies",
                f"  unexpected rows   {len(self.unexpected)}",
                f"  order violations  {len(self.order_violations)} bookings",
                f"  dead-lettered without reason"
                f" {len(self.dead_lettered_without_reason)}",
                f"  duplicates in raw {len(self.duplicates_in_raw)}"
                " (informational: the processor drops them)",
                f"  dead letters of no produced event"
                f" {len(self.unmatched_dead_letters)} (informational)",
                f"verdict: {'CLEAN' if self.clean else 'NOT CLEAN'}",
            ]
        )

    def offenders(self, show: int) -> list[str]:
        """``kind<TAB>id<TAB>detail`` lines, at most ``show`` of each kind."""
        lines = [f"lost\t{i}" for i in self.lost[:show]]
        dups = sorted(self.duplicated.items())[:show]
        lines += [f"duplicated\t{i}\t{n} extra" for i, n in dups]
        lines += [f"unexpected\t{i}" for i in self.unexpected[:show]]
        lines += [
            f"order\t{v.booking_id}\t{v.kind}: {v.detail}"
            for v in self.order_violations[:show]
        ]
        lines += [f"no_reason\t{c}" for c in self.dead_lettered_without_reason[:show]]
        return lines


def _iso(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat()


def audit(
    kafka: KafkaSettings,
    registry: RegistrySettings,
    clickhouse: ClickHouseSettings,
    topics: TopicSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    check_order: bool = True,
) -> AuditReport:
    """Reconcile the raw and dead-letter topics with ClickHouse.

    Args:
        since, until: Audit only events with ``since <= occurred_at < until``
            (timezone-aware); None on both sides audits the whole history,
            including raw records too broken to decode.
        check_order: Also check each booking's stored history (needs the
            ``seq`` and ``kafka_*`` columns).

    Raises:
        ReconcileError: A topic could not be read to its end.
        ValueError: ``since`` or ``until`` is naive.
    """
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise ValueError("since and until must be timezone-aware")

    side = read_kafka(kafka, registry, topics, since, until)
    stored, violations = read_clickhouse(
        clickhouse, since, until, check_order=check_order
    )

    lost, duplicated, unexpected = compare(
        side.raw, stored, side.dead, side.dead_repeats
    )
    report = AuditReport(
        produced=len(side.raw),
        raw_records=side.raw_records,
        stored=sum(stored.values()),
        dead_lettered=side.dead_records,
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        order_violations=violations,
        dead_lettered_without_reason=side.without_reason,
        duplicates_in_raw={i: n for i, n in sorted(side.raw.items()) if n > 1},
        unmatched_dead_letters=side.unmatched,
        since=since,
        until=until,
    )
    log.info(
        "audited",
        extra={
            "produced": report.produced,
            "stored": report.stored,
            "dead_lettered": report.dead_lettered,
            "lost": len(lost),
            "duplicated": len(duplicated),
            "unexpected": len(unexpected),
            "order_violations": len(violations),
            "clean": report.clean,
        },
    )
    return report
