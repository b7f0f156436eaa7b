"""``booking-events topics``: create and inspect the pipeline's topics."""

from __future__ import annotations

import click

from booking_events.settings import KafkaSettings, TopicSettings
from booking_events.topics import ensure_topics


@click.group("topics")
def command() -> None:
    """Kafka topics of the pipeline."""


@command.command("create")
def create() -> None:
    """Create the raw, validated and dead-letter topics if missing (idempotent)."""
    topics = TopicSettings()
    created = ensure_topics(KafkaSettings(), topics)
    for name in (topics.raw, topics.validated, topics.dead_letter):
        state = "created" if name in created else "exists"
        click.echo(f"{name}\t{state}\tpartitions={topics.partitions}")
