"""processors.faust_fixes: the corrections reach faust's own code paths (the
broker side of the highwater fix is in tests/integration/test_faust_highwater.py;
the fault tests in tests/faults/test_processor_faults.py restart real workers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.tables import recovery as faust_recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from processors import faust_fixes
from processors.app import STATE_TABLE, create_app
from processors.config import ProcessorSettings

RECOVERY_STEPS = ["on_recovery_completed", "_resume_streams"]
"""Faust's two ways out of recovery; both resume the source partitions."""


class RecordingConsumer:
    """The consumer calls a recovery step makes, in the order it makes them."""

    def __init__(self, assignment: set[TP], seek_error: Exception | None = None):
        self.partitions = assignment
        self.seek_error = seek_error
        self.calls: list[tuple[str, frozenset[TP]]] = []

    def assignment(self) -> set[TP]:
        return set(self.partitions)

    def resume_partitions(self, partitions: Any) -> None:
        self.calls.append(("resume", frozenset(partitions)))

    def pause_partitions(self, partitions: Any) -> None:
        self.calls.append(("pause", frozenset(partitions)))

    async def perform_seek(self) -> None:
        await asyncio.sleep(0)  # the real seek is a round trip; others may run
        if self.seek_error is not None:
            raise self.seek_error
        self.calls.append(("seek", frozenset()))

    def resume_flow(self) -> None:
        self.calls.append(("resume_flow", frozenset()))


class IdleFetcher:
    async def maybe_start(self) -> None:
        return None


def new_app() -> Any:
    return create_app(
        ProcessorSettings(), KafkaSettings(), RegistrySettings(), TopicSettings()
    )


def run_step(name: str, consumer: RecordingConsumer) -> None:
    """Run faust's recovery step ``name`` of a fresh app against ``consumer``."""

    async def run() -> None:
        # Created inside the loop: faust's services bind to the running loop.
        app = new_app()
        app._consumer = consumer
        app._fetcher = IdleFetcher()
        step = getattr(app.tables.recovery, name)
        await asyncio.wait_for(step(generation_id=app.consumer_generation_id), 10)

    asyncio.run(run())


def partitions() -> tuple[TP, set[TP]]:
    """A source partition and the changelog partition assigned with it."""
    changelog = new_app().tables[STATE_TABLE].changelog_topic.get_topic_name()
    source = TP(TopicSettings().raw, 0)
    return source, {source, TP(changelog, 0)}


def test_creating_the_app_applies_the_highwater_fix() -> None:
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = None  # type: ignore[assignment,method-assign]
    new_app()

    patched = faust_aiokafka.AIOKafkaConsumerThread._highwaters
    assert patched is faust_fixes.fresh_highwaters


@pytest.mark.parametrize("step", RECOVERY_STEPS)
def test_source_partitions_resume_only_after_the_seek(step: str) -> None:
    source, assignment = partitions()
    consumer = RecordingConsumer(assignment)

    run_step(step, consumer)

    names = [name for name, _ in consumer.calls]
    assert "seek" in names and ("resume", frozenset({source})) in consumer.calls
    assert names.index("seek") < consumer.calls.index(("resume", frozenset({source})))
    # Nothing of the source partitions was resumed before the seek either.
    assert not any(source in tps for _, tps in consumer.calls[: names.index("seek")])


@pytest.mark.parametrize("step", RECOVERY_STEPS)
def test_a_failed_seek_still_resumes_and_restores_the_consumer(step: str) -> None:
    source, assignment = partitions()
    consumer = RecordingConsumer(assignment, seek_error=RuntimeError("rebalance"))

    with pytest.raises(RuntimeError):
        run_step(step, consumer)

    assert consumer.calls[-1] == ("resume", frozenset({source}))
    # The consumer's own methods are back in place.
    assert consumer.resume_partitions.__func__ is RecordingConsumer.resume_partitions  # type: ignore[attr-defined]
    assert consumer.perform_seek.__func__ is RecordingConsumer.perform_seek  # type: ignore[attr-defined]


def test_applying_twice_wraps_once() -> None:
    faust_fixes.apply()
    once = {name: getattr(faust_recovery.Recovery, name) for name in RECOVERY_STEPS}
    faust_fixes.apply()

    for name in RECOVERY_STEPS:
        assert getattr(faust_recovery.Recovery, name) is once[name]
