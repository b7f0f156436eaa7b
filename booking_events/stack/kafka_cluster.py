"""A Kafka cluster of several KRaft nodes on loopback, for failover tests.

Every node is a combined broker and controller; the voters are fixed, so the
cluster keeps a quorum (and ``min.insync.replicas=2`` keeps accepting writes)
while one of three nodes is down.

>>> cluster = KafkaCluster(state_dir, nodes=3)
>>> cluster.start()
>>> cluster.nodes[0].kill()    # a crash; cluster.nodes[0].start() brings it back
>>> cluster.stop()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from booking_events.stack.config import StackSettings, free_ports
from booking_events.stack.kafka import KafkaNode, KafkaNodeSpec
from booking_events.stack.process import Service, stop_all

log = logging.getLogger(__name__)


class KafkaCluster:
    """``nodes`` Kafka processes named ``kafka-1`` ... under one state dir."""

    def __init__(
        self,
        state_dir: Path,
        nodes: int = 3,
        specs: Sequence[KafkaNodeSpec] | None = None,
        settings: StackSettings | None = None,
    ) -> None:
        if specs is None:
            ports = free_ports(2 * nodes)
            specs = [
                KafkaNodeSpec(i + 1, ports[2 * i], ports[2 * i + 1])
                for i in range(nodes)
            ]
        if len(specs) < 2:
            raise ValueError("a cluster needs at least two nodes; use LocalStack")
        self.settings = settings or StackSettings()
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.specs = list(specs)
        self.nodes = [
            KafkaNode(
                self.state_dir,
                self.settings,
                spec,
                voters=self.specs,
                name=f"kafka-{spec.node_id}",
            )
            for spec in self.specs
        ]

    @property
    def services(self) -> dict[str, Service]:
        return {node.name: node for node in self.nodes}

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` naming every node."""
        return ",".join(spec.bootstrap for spec in self.specs)

    def install(self) -> None:
        self.nodes[0].install()

    def start(self, fresh: bool = False, timeout_s: float | None = None) -> None:
        """Start every node that is down and wait until all are in the cluster."""
        timeout_s = timeout_s or self.settings.start_timeout_s
        deadline = time.monotonic() + timeout_s
        self.install()
        if fresh:
            self.stop()
            self.nodes[0].cluster_id_file.unlink(missing_ok=True)
        for node in self.nodes:
            node.check_ports()

        # All voters must be up before any of them elects a leader.
        for node in self.nodes:
            node.launch(fresh=fresh)
        for node in self.nodes:
            node.wait_healthy(max(1.0, deadline - time.monotonic()))
        log.info("kafka cluster healthy", extra={"bootstrap": self.bootstrap})

    def stop(self) -> None:
        stop_all(self.nodes, self.settings.stop_timeout_s)

    def status(self) -> dict[str, bool]:
        return {node.name: node.healthy() for node in self.nodes}
