"""Benchmark of the booking-events pipeline against three baselines (issue #5).

``bench/run`` starts a local stack on its own ports, pre-generates encoded
events, and measures four arms on the same events and the same services:
the broker ceiling, a hand-written consumer, a Quix Streams application and
this project's producer, processor and sink. See ``bench/README.md``.
"""
