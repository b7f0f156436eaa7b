"""booking-events: the command line, shared settings and the local service stack."""

__version__ = "0.1.0"
