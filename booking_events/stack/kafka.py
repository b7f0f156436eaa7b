"""Kafka brokers in KRaft mode, run from the jars Maven resolved.

A :class:`KafkaNode` is one combined broker and controller. Alone it is
formatted ``--standalone``; in a :class:`KafkaCluster` every node shares one
cluster id and a fixed voter list, so failover tests can kill one of three.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import shutil
import subprocess
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka.admin import AdminClient

from booking_events.stack.artifacts import MARKER, resolve_kafka
from booking_events.stack.config import LOOPBACK, StackSettings
from booking_events.stack.exceptions import MissingToolError, StackError
from booking_events.stack.java import find_java
from booking_events.stack.process import Service, port_answers

log = logging.getLogger(__name__)

HEAP_OPTS = ["-Xms256m", "-Xmx768m"]
FORMATTED_MARKER = "meta.properties"


@dataclasses.dataclass(frozen=True)
class KafkaNodeSpec:
    """Identity and listeners of one node."""

    node_id: int
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes)."""
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids ids that look like flags
            return cluster_id


class KafkaNode(Service):
    """One Kafka process with ``process.roles=broker,controller``.

    ``voters`` is None for a standalone node, else every node of the cluster.
    """

    def __init__(
        self,
        state_dir: Path,
        settings: StackSettings,
        spec: KafkaNodeSpec,
        voters: Sequence[KafkaNodeSpec] | None = None,
        name: str = "kafka",
    ) -> None:
        self.name = name
        super().__init__(state_dir)
        self.settings = settings
        self.spec = spec
        self.voters = voters
        self.lib_root = state_dir / "lib"
        self.conf_dir = state_dir / "conf" / name
        self.data_dir = state_dir / "data" / name
        self.cluster_id_file = (
            state_dir
            / "data"
            / (f"{name}.cluster-id" if voters is None else "kafka-cluster.cluster-id")
        )

    @property
    def ports(self) -> Mapping[str, int]:
        if self.voters is None:
            return {
                "kafka": self.spec.port,
                "kafka_controller": self.spec.controller_port,
            }
        return {
            f"{self.name}": self.spec.port,
            f"{self.name}_controller": self.spec.controller_port,
        }

    @property
    def endpoint(self) -> str:
        return self.spec.bootstrap

    @property
    def data_dirs(self) -> Sequence[Path]:
        if self.voters is None:
            return [self.data_dir, self.cluster_id_file]
        return [self.data_dir]  # the cluster's id is shared: KafkaCluster wipes it

    def check_tools(self) -> None:
        find_java(17, self.settings.java_home, "Kafka")

    def install(self) -> None:
        resolve_kafka(self.lib_root, self.settings.maven)

    def healthy(self) -> bool:
        if not port_answers(self.spec.port):
            return False
        admin = AdminClient(
            {
                "bootstrap.servers": self.spec.bootstrap,
                "log_level": 0,
                "socket.connection.setup.timeout.ms": 2000,
            }
        )
        try:
            metadata = admin.list_topics(timeout=3)
        except Exception:  # any client error means "not ready yet"
            return False
        return self.spec.node_id in metadata.brokers

    def _prepare(self) -> tuple[list[str], Path, dict[str, str]]:
        java = find_java(17, self.settings.java_home, "Kafka")
        lib = self.lib_root / "kafka"
        if not (lib / MARKER).is_file():
            raise MissingToolError(
                f"Kafka jars are missing in {lib}: run `booking-events stack install`"
            )
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)

        log4j = self.conf_dir / "log4j2.properties"
        resource = (
            importlib.resources.files("booking_events.stack") / "log4j2.properties"
        )
        log4j.write_text(resource.read_text())
        properties = self.conf_dir / "server.properties"
        properties.write_text(self._server_properties())
        base = [str(java), "-cp", f"{lib}/*", f"-Dlog4j2.configurationFile={log4j}"]

        if not (self.data_dir / FORMATTED_MARKER).exists():
            self._format(base, properties)
        command = [*base[:1], *HEAP_OPTS, *base[1:], "kafka.Kafka", str(properties)]
        return command, self.conf_dir, {}

    def _server_properties(self) -> str:
        spec = self.spec
        lines = {
            "process.roles": "broker,controller",
            "node.id": spec.node_id,
            "listeners": f"PLAINTEXT://{LOOPBACK}:{spec.port},"
            f"CONTROLLER://{LOOPBACK}:{spec.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{spec.port},"
            f"CONTROLLER://{LOOPBACK}:{spec.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "log.dirs": self.data_dir,
            "num.partitions": 6,
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.num.partitions": 6,
        }
        if self.voters is None:
            lines |= {
                "controller.quorum.bootstrap.servers": (
                    f"{LOOPBACK}:{spec.controller_port}"
                ),
                "offsets.topic.replication.factor": 1,
                "transaction.state.log.replication.factor": 1,
                "transaction.state.log.min.isr": 1,
                "share.coordinator.state.topic.replication.factor": 1,
                "share.coordinator.state.topic.min.isr": 1,
            }
        else:
            replicas = min(3, len(self.voters))
            lines |= {
                "controller.quorum.voters": ",".join(
                    f"{v.node_id}@{LOOPBACK}:{v.controller_port}" for v in self.voters
                ),
                "default.replication.factor": replicas,
                "min.insync.replicas": min(2, replicas),
                "offsets.topic.replication.factor": replicas,
                "transaction.state.log.replication.factor": replicas,
                "transaction.state.log.min.isr": min(2, replicas),
            }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def _format(self, base: list[str], properties: Path) -> None:
        if not self.cluster_id_file.exists():
            self.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
            self.cluster_id_file.write_text(new_cluster_id() + "\n")
        cluster_id = self.cluster_id_file.read_text().strip()
        command = [
            *base,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(properties),
        ]
        if self.voters is None:
            command.append("--standalone")
        log.info(
            "formatting %s storage",
            self.name,
            extra={"data_dir": str(self.data_dir), "cluster_id": cluster_id},
        )
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=self.conf_dir
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(f"formatting {self.name} storage failed:\n{output}")
