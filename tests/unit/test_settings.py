"""Settings: unknown variables, readable validation errors, translated errors."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from booking_events.exceptions import (
    ConfigurationError,
    ServiceError,
    clickhouse_error,
    kafka_error,
)
from booking_events.settings import (
    ClickHouseSettings,
    RegistrySettings,
    TopicSettings,
    check_environment,
    check_values,
    describe_validation_error,
    known_env_names,
)


@pytest.mark.parametrize(
    ("misspelt", "meant"),
    [
        (
            "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVER",
            "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS",
        ),
        ("BOOKING_EVENTS_CLICKHOUSE_URLL", "BOOKING_EVENTS_CLICKHOUSE_URL"),
        ("BOOKING_EVENTS_SINK_BATCH_MAX_ROW", "BOOKING_EVENTS_SINK_BATCH_MAX_ROWS"),
        ("booking_events_topic_partition", "BOOKING_EVENTS_TOPIC_PARTITIONS"),
    ],
)
def test_a_misspelt_variable_is_rejected_with_the_closest_name(
    misspelt: str, meant: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_environment({misspelt: "x", "PATH": "/bin"})

    assert misspelt in str(caught.value)
    assert f"did you mean {meant}?" in str(caught.value)


def test_every_variable_some_settings_class_reads_is_accepted() -> None:
    check_environment(
        {
            "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "BOOKING_EVENTS_CLICKHOUSE_PASSWORD": "p",
            "BOOKING_EVENTS_TOPIC_DEAD_LETTER": "dl",
            "BOOKING_EVENTS_PRODUCER_LINGER_MS": "5",
            "BOOKING_EVENTS_PROCESSOR_APP_ID": "a",
            "BOOKING_EVENTS_SINK_GROUP_ID": "g",
            "BOOKING_EVENTS_STACK_KAFKA_PORT": "19092",
            "BOOKING_EVENTS_STACK_STATE_DIR": "/tmp/s",
            "BOOKING_EVENTS_METRICS_PORT": "9464",
            "BOOKING_EVENTS_METRICS_BIND": "0.0.0.0",
            "BOOKING_EVENTS_LOG_FORMAT": "json",
            "OTHER_PREFIX_URLL": "ignored",
        }
    )


def test_known_names_cover_every_stage() -> None:
    names = known_env_names()

    for prefix in ("KAFKA", "REGISTRY", "CLICKHOUSE", "TOPIC", "PRODUCER"):
        assert any(n.startswith(f"BOOKING_EVENTS_{prefix}_") for n in names)
    for prefix in ("PROCESSOR", "SINK", "STACK"):
        assert any(n.startswith(f"BOOKING_EVENTS_{prefix}_") for n in names)


def test_the_value_of_an_unknown_variable_is_never_shown() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_environment({"BOOKING_EVENTS_CLICKHOUSE_PASWORD": "hunter2"})

    assert "hunter2" not in str(caught.value)
    assert "BOOKING_EVENTS_CLICKHOUSE_PASSWORD" in str(caught.value)


def test_an_invalid_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_TOPIC_PARTITIONS", "six")
    with pytest.raises(ValidationError) as caught:
        TopicSettings()

    message = describe_validation_error(caught.value)

    assert message.startswith("invalid setting: BOOKING_EVENTS_TOPIC_PARTITIONS: ")
    assert "six" not in message


def test_a_bad_value_is_refused_even_in_a_group_the_command_does_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_SINK_BATCH_MAX_ROWS", "500")
    monkeypatch.setenv("BOOKING_EVENTS_METRICS_PORT", "abc")
    with pytest.raises(ValidationError) as caught:
        check_values()

    message = describe_validation_error(caught.value)

    assert message.startswith("invalid setting: BOOKING_EVENTS_METRICS_PORT: ")


def test_good_values_pass_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_SINK_BATCH_MAX_ROWS", "500")
    monkeypatch.setenv("BOOKING_EVENTS_METRICS_PORT", "9464")

    check_values()


@pytest.mark.parametrize("settings", [ClickHouseSettings, RegistrySettings])
@pytest.mark.parametrize(
    "url", ["db.example.com:8123", "notaurl", "ftp://db.example.com", "http://"]
)
def test_an_endpoint_that_is_not_an_http_url_is_refused(
    settings: type[ClickHouseSettings | RegistrySettings],
    url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # clickhouse-connect would take "db.example.com:8123" for 127.0.0.1:8123.
    variable = f"{settings.model_config['env_prefix']}URL"
    monkeypatch.setenv(variable, url)
    with pytest.raises(ValidationError) as caught:
        settings()

    message = describe_validation_error(caught.value)

    assert message.startswith(f"invalid setting: {variable}: ")
    assert "http:// or https:// URL" in message


@pytest.mark.parametrize(
    "url", ["https://user:secret@ch.example.com:8443/", "http://127.0.0.1:8123"]
)
def test_an_http_url_is_kept_as_given(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_CLICKHOUSE_URL", url)

    assert ClickHouseSettings().url == url


def test_a_clickhouse_server_error_becomes_one_line_with_code_and_name() -> None:
    exc = DatabaseError(
        "Received ClickHouse exception, code: 62, server response: Code: 62."
        " DB::Exception: Syntax error: failed at position 1 (SELEC) (line 1, col 1):"
        " SELEC 1\n FORMAT Native. Expected one of: SELECT, WITH, INSERT."
        " (SYNTAX_ERROR) (version 26.9.2.1) (for url http://127.0.0.1:8123)"
    )

    error = clickhouse_error(exc, "http://127.0.0.1:8123")

    assert str(error) == (
        "ClickHouse refused the request: SYNTAX_ERROR (code 62): Syntax error:"
        " failed at position 1 (SELEC) (line 1, col 1): SELEC 1 FORMAT Native"
    )
    assert "\n" not in str(error)
    assert not error.retriable


def test_a_missing_database_says_who_creates_it() -> None:
    exc = DatabaseError(
        "Received ClickHouse exception, code: 81, server response: Code: 81."
        " DB::Exception: Database booking_events does not exist. (UNKNOWN_DATABASE)"
        " (version 26.9.2.1) (for url http://127.0.0.1:8123)"
    )

    message = str(clickhouse_error(exc, "http://127.0.0.1:8123"))

    assert "UNKNOWN_DATABASE (code 81)" in message
    assert "booking-events pipeline" in message


def test_an_unreachable_clickhouse_hides_credentials_in_its_url() -> None:
    exc = OperationalError(
        "Error HTTPConnectionPool(host='db', port=8123): Max retries exceeded"
        ' (Caused by NewConnectionError("Failed to establish a new connection:'
        ' [Errno 111] Connection refused")) executing HTTP request attempt 1'
    )

    error = clickhouse_error(exc, "https://analyst:s3cret@db:8443")

    assert str(error).startswith(
        "ClickHouse at https://db:8443 could not be reached (Connection refused)"
    )
    assert "s3cret" not in str(error)
    assert error.retriable


def test_an_unreachable_kafka_names_the_brokers_and_the_variable() -> None:
    exc = KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))

    error = kafka_error(exc, "k1:9092")

    assert isinstance(error, ServiceError)
    assert "Kafka at k1:9092 could not be reached" in str(error)
    assert "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS" in str(error)


def test_secrets_stay_out_of_repr() -> None:
    settings = ClickHouseSettings(password="hunter2")

    assert "hunter2" not in repr(settings)
