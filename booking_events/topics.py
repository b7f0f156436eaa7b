"""Creates the pipeline's topics with the layout the stages rely on.

All three topics get the same partition count: the processor keeps per-booking
state co-partitioned with the raw topic and writes each booking to the same
partition number downstream. The raw and dead-letter topics keep their records
forever (``retention.ms=-1``): they are the record of what was emitted and of
what was refused.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from booking_events.exceptions import BookingEventsError, kafka_error
from booking_events.settings import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)


class TopicError(BookingEventsError):
    """A topic could not be created or has the wrong layout."""


def topic_configs(topics: TopicSettings) -> dict[str, dict[str, str]]:
    """Return the config of each topic by name."""
    keep = {"retention.ms": "-1"}
    durable = {"min.insync.replicas": "2"} if topics.replication_factor >= 3 else {}
    return {
        topics.raw: {**keep, **durable},
        topics.validated: {**durable},
        topics.dead_letter: {**keep, **durable},
    }


class _LibrdkafkaLog:
    """Sends librdkafka's own log lines to this module's logger at DEBUG.

    Without it librdkafka prints a "Connect ... failed" line to stderr every
    few milliseconds while the brokers are down; the error raised afterwards
    says the same once.
    """

    def log(self, _level: int, fmt: str, *args: object) -> None:
        log.debug(fmt, *args)


def ensure_topics(
    kafka: KafkaSettings, topics: TopicSettings, timeout_s: float = 15.0
) -> list[str]:
    """Create the missing topics; return the names created.

    Raises:
        ServiceError: The brokers did not answer within ``timeout_s``.
        TopicError: Creation failed, or an existing topic has another partition
            count than configured (per-booking order would break).
    """
    admin = AdminClient(kafka.librdkafka(), logger=_LibrdkafkaLog())
    wanted = topic_configs(topics)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise kafka_error(exc, kafka.bootstrap_servers) from exc
    for name in wanted.keys() & existing.keys():
        have = len(existing[name].partitions)
        if have != topics.partitions:
            raise TopicError(
                f"topic {name!r} exists with {have} partitions, configured"
                f" {topics.partitions}: set BOOKING_EVENTS_TOPIC_PARTITIONS={have}"
                " or use new topic names"
            )
    missing = [
        NewTopic(
            name,
            num_partitions=topics.partitions,
            replication_factor=topics.replication_factor,
            config=config,
        )
        for name, config in wanted.items()
        if name not in existing
    ]
    created = []
    for name, future in admin.create_topics(missing).items() if missing else []:
        try:
            future.result(timeout=timeout_s)
            created.append(name)
            log.info(
                "topic created", extra={"topic": name, "partitions": topics.partitions}
            )
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicError(f"could not create topic {name!r}: {exc}") from exc
    return created
