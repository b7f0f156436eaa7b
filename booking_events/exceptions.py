"""The root of every error this project raises on purpose."""

from __future__ import annotations


class BookingEventsError(Exception):
    """Base class of the project's errors.

    ``retriable`` tells a retry loop whether trying the same thing again can help;
    the loop asks only that, never the message.
    """

    retriable: bool = False


class ConfigurationError(BookingEventsError):
    """A setting is missing or wrong; the message names it and what to do."""
