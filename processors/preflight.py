"""Checks before the worker starts: the topics it reads and writes exist alike.

Faust would otherwise wait on a missing source topic, or fail deep inside a
rebalance when the raw topic and the state changelog differ in partitions.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from booking_events.exceptions import ConfigurationError
from booking_events.logs import KAFKA_CLIENT_LOG
from booking_events.settings import KafkaSettings, TopicSettings
from processors.exceptions import ProcessorError

log = logging.getLogger(__name__)


class BrokerUnavailableError(ProcessorError):
    """The brokers did not answer the metadata request."""

    retriable = True


def check_topics(
    kafka: KafkaSettings, topics: TopicSettings, *, timeout_s: float = 15.0
) -> dict[str, int]:
    """Return the partition count of each topic; raise when one is missing or off.

    Every topic must exist with ``topics.partitions`` partitions: outputs go to
    the partition number their source came from.
    """
    admin = AdminClient(kafka.librdkafka(), logger=KAFKA_CLIENT_LOG)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"no metadata from {kafka.bootstrap_servers} within {timeout_s} s:"
            f" {exc}; check BOOKING_EVENTS_KAFKA_* and that the brokers are up"
        ) from exc

    counts: dict[str, int] = {}
    for name in (topics.raw, topics.validated, topics.dead_letter):
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            raise ConfigurationError(
                f"topic {name!r} does not exist: create the topics with"
                " `booking-events topics create`"
            )
        counts[name] = len(topic.partitions)

    wrong = {n: c for n, c in counts.items() if c != topics.partitions}
    if wrong:
        raise ConfigurationError(
            f"topics {wrong} do not have BOOKING_EVENTS_TOPIC_PARTITIONS="
            f"{topics.partitions} partitions: set it to the raw topic's count, or"
            " recreate the topics; outputs keep their source's partition number"
        )
    log.debug("topics present: %s", counts)
    return counts


def output_limits(
    kafka: KafkaSettings, topics: TopicSettings, *, timeout_s: float = 15.0
) -> dict[str, int]:
    """Return ``max.message.bytes`` of the validated and dead-letter topics.

    The processor checks each output against these before sending it: under
    exactly-once a record the broker refuses would fail its whole transaction,
    so an output too large is dead-lettered as ``oversized`` instead.
    """
    admin = AdminClient(kafka.librdkafka(), logger=KAFKA_CLIENT_LOG)
    resources = [
        ConfigResource(ResourceType.TOPIC, name)
        for name in (topics.validated, topics.dead_letter)
    ]
    limits: dict[str, int] = {}
    try:
        for resource, future in admin.describe_configs(resources).items():
            entry = future.result(timeout=timeout_s)["max.message.bytes"]
            limits[resource.name] = int(entry.value)
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"no topic configs from {kafka.bootstrap_servers} within {timeout_s} s:"
            f" {exc}; check BOOKING_EVENTS_KAFKA_* and that the brokers are up"
        ) from exc
    log.debug("output limits: %s", limits)
    return limits
