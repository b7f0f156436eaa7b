"""The audit's comparison and order checks, without any service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from booking_events.audit import AuditReport
from booking_events.reconcile import OrderViolation, compare, order_violations


def test_every_event_stored_once_is_clean() -> None:
    lost, duplicated, unexpected = compare({"a": 1, "b": 1}, {"a": 1}, {"b": 1})

    assert (lost, duplicated, unexpected) == ([], {}, [])


def test_an_event_neither_stored_nor_dead_lettered_is_lost() -> None:
    lost, duplicated, _ = compare({"a": 1, "b": 1, "c": 1}, {"a": 1}, {})

    assert lost == ["b", "c"]
    assert duplicated == {}


def test_a_row_stored_twice_is_duplicated_even_if_raw_holds_two_copies() -> None:
    _, duplicated, _ = compare({"a": 2, "b": 1}, {"a": 2, "b": 3}, {})

    assert duplicated == {"a": 1, "b": 2}


def test_a_repeat_in_raw_stored_once_is_no_duplicate() -> None:
    assert compare({"a": 2}, {"a": 1}, {}) == ([], {}, [])


def test_a_repeat_rejected_once_and_stored_once_is_no_duplicate() -> None:
    # First delivery dead-lettered (a seq gap), the redelivery accepted.
    assert compare({"a": 2}, {"a": 1}, {"a": 1}) == ([], {}, [])


def test_one_raw_record_both_stored_and_dead_lettered_is_duplicated() -> None:
    _, duplicated, _ = compare({"a": 1}, {"a": 1}, {"a": 1})

    assert duplicated == {"a": 1}


def test_one_raw_record_dead_lettered_twice_is_duplicated() -> None:
    _, duplicated, _ = compare({"t/0/5": 2}, {}, {"t/0/5": 2}, {"t/0/5": 1})

    assert duplicated == {"t/0/5": 1}


def test_a_row_of_no_produced_event_is_unexpected() -> None:
    _, _, unexpected = compare({"a": 1}, {"a": 1, "z": 1}, {})

    assert unexpected == ["z"]


def test_a_history_in_order_has_no_violation() -> None:
    history = [(2, 10, 1), (2, 14, 2), (2, 30, 3)]

    assert order_violations("B-1", history) == []


def test_rows_listed_in_any_order_are_checked_in_offset_order() -> None:
    assert order_violations("B-1", [(0, 9, 3), (0, 1, 1), (0, 5, 2)]) == []


def test_a_missing_seq_is_a_gap() -> None:
    (violation,) = order_violations("B-1", [(0, 1, 1), (0, 2, 3)])

    assert violation == OrderViolation("B-1", "seq_gap", "seqs [2] missing")


def test_a_history_not_starting_at_one_is_a_gap_unless_a_range_is_audited() -> None:
    history = [(0, 1, 3), (0, 2, 4)]

    assert [v.kind for v in order_violations("B-1", history)] == ["seq_gap"]
    assert order_violations("B-1", history, from_first=False) == []


def test_the_same_seq_twice_is_reported_once_per_booking() -> None:
    # A copy of a row keeps its Kafka offset: repeated, but not out of order.
    history = [(0, 1, 1), (0, 2, 2), (0, 2, 2)]

    assert [v.kind for v in order_violations("B-1", history)] == ["seq_repeated"]


def test_offsets_disagreeing_with_seq_order_are_reported() -> None:
    (violation,) = order_violations("B-1", [(0, 1, 1), (0, 2, 3), (0, 3, 2)])

    assert violation.kind == "offset_order"
    assert "[1, 3, 2]" in violation.detail


def test_a_booking_stored_from_two_partitions_is_reported() -> None:
    kinds = [v.kind for v in order_violations("B-1", [(0, 1, 1), (1, 0, 2)])]

    assert kinds == ["partitions"]


def report(**kwargs: Any) -> AuditReport:
    counts: dict[str, Any] = {
        "produced": 3,
        "raw_records": 3,
        "stored": 3,
        "dead_lettered": 0,
    }
    return AuditReport(**{**counts, **kwargs})


def test_a_report_with_raw_duplicates_only_is_clean() -> None:
    result = report(duplicates_in_raw={"a": 2}, unmatched_dead_letters=["x/0/1"])

    assert result.clean
    assert "verdict: CLEAN" in result.summary()


def test_each_kind_of_finding_makes_the_report_unclean() -> None:
    findings: list[dict[str, Any]] = [
        {"lost": ["a"]},
        {"duplicated": {"a": 1}},
        {"unexpected": ["z"]},
        {"order_violations": [OrderViolation("B-1", "seq_gap", "seqs [2] missing")]},
        {"dead_lettered_without_reason": ["dl/0/0 (a)"]},
    ]
    for finding in findings:
        result = report(**finding)
        assert not result.clean, finding
        assert "verdict: NOT CLEAN" in result.summary()


def test_offenders_name_at_most_show_of_each_kind() -> None:
    result = report(
        lost=["a", "b", "c"],
        duplicated={"d": 2},
        order_violations=[OrderViolation("B-1", "seq_gap", "seqs [2] missing")],
    )

    assert result.offenders(2) == [
        "lost\ta",
        "lost\tb",
        "duplicated\td\t2 extra",
        "order\tB-1\tseq_gap: seqs [2] missing",
    ]


def test_the_summary_names_the_range() -> None:
    since = datetime(2016, 7, 1, tzinfo=UTC)

    assert (
        "occurred_at in [2016-07-01T00:00:00+00:00, -)"
        in report(since=since).summary().splitlines()[0]
    )
