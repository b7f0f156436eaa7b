"""The local stack: Kafka, Apicurio Registry and ClickHouse as real processes.

>>> stack = LocalStack(Path(".state"), StackPorts.free())
>>> stack.start()
>>> stack.env()["BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS"]
'127.0.0.1:...'
>>> stack.stop()
"""

from __future__ import annotations

from booking_events.stack.config import StackPorts, StackSettings
from booking_events.stack.exceptions import (
    MissingToolError,
    PortInUseError,
    ServiceStartError,
    StackError,
)
from booking_events.stack.kafka_cluster import KafkaCluster
from booking_events.stack.local import Endpoints, LocalStack

__all__ = [
    "Endpoints",
    "KafkaCluster",
    "LocalStack",
    "MissingToolError",
    "PortInUseError",
    "ServiceStartError",
    "StackError",
    "StackPorts",
    "StackSettings",
]
