"""The four arms, one module each; ``ARMS`` maps the name to its class.

``quix_app`` is the Quix Streams application itself: it runs in its own
virtualenv (quixstreams pins confluent-kafka below this project's minimum),
so it imports nothing from the driver side.
"""

from bench.arms.base import Arm, Context
from bench.arms.broker import BrokerArm
from bench.arms.naive import NaiveArm
from bench.arms.pipeline import PipelineArm
from bench.arms.quix import QuixArm

ARMS: dict[str, type[Arm]] = {
    "broker": BrokerArm,
    "naive": NaiveArm,
    "quix": QuixArm,
    "pipeline": PipelineArm,
}

__all__ = ["ARMS", "Arm", "Context"]
