"""The stream processor: validates raw booking events and routes them.

Valid events go on to the validated topic unchanged; invalid ones go to the
dead-letter topic with the reason in their headers. ``rules`` holds the
stateless checks, ``ordering`` the per-booking ones, ``app`` wires both into a
faust application.
"""

from processors.config import ProcessorSettings
from processors.exceptions import DeliveryError, ProcessorError
from processors.ordering import BookingState, advance
from processors.rules import Violation, check_event

__all__ = [
    "BookingState",
    "DeliveryError",
    "ProcessorError",
    "ProcessorSettings",
    "Violation",
    "advance",
    "check_event",
]
