"""Maps the shared Kafka settings onto faust's broker options."""

from __future__ import annotations

import ssl
from typing import Any

import faust

from booking_events.exceptions import ConfigurationError
from booking_events.settings import KafkaSettings


def broker_urls(kafka: KafkaSettings) -> list[str]:
    """Return faust broker URLs for ``bootstrap_servers``."""
    hosts = [h.strip() for h in kafka.bootstrap_servers.split(",") if h.strip()]
    if not hosts:
        raise ConfigurationError(
            "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS is empty: set it to host:port[,...]"
        )
    return [f"kafka://{h}" for h in hosts]


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """Return a TLS context trusting the configured CA, with the client cert if any."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=kafka.ssl_ca_location
    )
    if kafka.ssl_certificate_location:
        context.load_cert_chain(
            kafka.ssl_certificate_location, keyfile=kafka.ssl_key_location
        )
    elif kafka.ssl_key_location:
        raise ConfigurationError(
            "BOOKING_EVENTS_KAFKA_SSL_KEY_LOCATION is set without"
            " BOOKING_EVENTS_KAFKA_SSL_CERTIFICATE_LOCATION: set both or neither"
        )
    return context


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """Return faust's ``broker_credentials`` for the security protocol.

    PLAINTEXT needs none; SSL gets a TLS context; SASL_PLAINTEXT and SASL_SSL
    get SASL credentials, the latter with the TLS context.
    """
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(kafka))
    if kafka.sasl_username is None or kafka.sasl_password is None:
        raise ConfigurationError(
            f"security_protocol {protocol} needs BOOKING_EVENTS_KAFKA_SASL_USERNAME"
            " and BOOKING_EVENTS_KAFKA_SASL_PASSWORD"
        )
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        mechanism=kafka.sasl_mechanism or "PLAIN",
        ssl_context=ssl_context(kafka) if protocol == "SASL_SSL" else None,
    )


def broker_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Return the ``faust.App`` keyword arguments that reach the brokers."""
    return {
        "broker": broker_urls(kafka),
        "broker_credentials": broker_credentials(kafka),
    }
