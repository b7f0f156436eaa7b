"""The producer under SIGTERM: every event it reported as emitted is in Kafka.

A real process emits real bookings' events through ``BookingEventProducer``
(with its SIGTERM handler), printing each event id once ``emit()`` returned,
that is once the event sits in the producer's buffer, not yet in Kafka. It gets
SIGTERM mid-stream; it must flush before it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from booking_events.reconcile import read_topic
from booking_events.settings import KafkaSettings, TopicSettings

pytestmark = [pytest.mark.faults]

REPO = Path(__file__).resolve().parents[2]

EMITTER = """
import sys, time
from producers import BookingEventProducer, ProducerSettings
from producers.hotel_rates import events_in_time_order, load_bookings

events = events_in_time_order(load_bookings()[:3000])
# A long linger keeps many events in the buffer when SIGTERM arrives.
with BookingEventProducer(settings=ProducerSettings(linger_ms=2000)) as producer:
    print("ready", flush=True)
    for event in events:
        producer.emit(event)
        print(event.event_id, flush=True)
        time.sleep(0.001)
"""


def test_sigterm_flushes_every_emitted_event(
    fault_topics: TopicSettings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
        ),
    }
    out = (tmp_path / "emitter.out").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-c", EMITTER],
        env=env,
        stdout=out,
        stderr=(tmp_path / "emitter.err").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if Path(out.name).read_text().count("\n") > 500:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    err = (tmp_path / "emitter.err").read_text()

    lines = Path(out.name).read_text().splitlines()
    assert lines[0] == "ready", err
    emitted = set(lines[1:])
    assert len(emitted) > 500, err
    assert len(emitted) < 10_000, "SIGTERM came too late to test anything"
    # Ended by the signal, after the flush (the handler re-raises it).
    assert code == -signal.SIGTERM, err

    in_kafka = event_ids(fault_topics)
    missing = emitted - in_kafka
    assert not missing, f"{len(missing)} emitted events not in Kafka: {err[-2000:]}"


def event_ids(topics: TopicSettings) -> set[str]:
    """Event ids of the raw topic, decoded."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from booking_events.settings import RegistrySettings
    from schemas import EventDeserializer

    deserializer = EventDeserializer(
        SchemaRegistryClient(RegistrySettings().client_config())
    )
    return {
        str(deserializer.record(m.value(), m.topic())["event_id"])
        for m in read_topic(KafkaSettings(), topics.raw)
    }
