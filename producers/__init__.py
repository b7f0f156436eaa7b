"""Publishing booking events: the producer library, replay and load generation."""

from producers.config import ProducerSettings
from producers.exceptions import (
    BufferFullError,
    DeliveryError,
    FailedDelivery,
    ProducerClosedError,
    ProducerError,
)
from producers.producer import BookingEventProducer

__all__ = [
    "BookingEventProducer",
    "BufferFullError",
    "DeliveryError",
    "FailedDelivery",
    "ProducerClosedError",
    "ProducerError",
    "ProducerSettings",
]
