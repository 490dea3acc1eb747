"""Times named in search queries, read against a fixed 'now'."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memos.text.timequery import parse_query_window

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def d(y: int, m: int, day: int) -> datetime:
    return datetime(y, m, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("Where did the user live in 2023?", d(2023, 1, 1), d(2024, 1, 1)),
        ("What happened in May 2023?", d(2023, 5, 1), d(2023, 6, 1)),
        ("the party on 8 May, 2023", d(2023, 5, 8), d(2023, 5, 9)),
        ("May 8th, 2023 party", d(2023, 5, 8), d(2023, 5, 9)),
        ("notes from 2023-05-08", d(2023, 5, 8), d(2023, 5, 9)),
        ("what did we do last year", d(2025, 1, 1), d(2026, 1, 1)),
        ("what did I eat yesterday", d(2026, 11, 24), d(2026, 11, 25)),
        ("3 weeks ago", d(2026, 11, 2), d(2026, 11, 9)),
        ("two months ago", d(2026, 9, 1), d(2026, 10, 1)),
        ("What did Caroline do last week", d(2026, 11, 16), d(2026, 11, 23)),
        ("in August", d(2026, 8, 1), d(2026, 9, 1)),
        ("in December", d(2025, 12, 1), d(2026, 1, 1)),
        ("我去年住在哪里", d(2025, 1, 1), d(2026, 1, 1)),
        ("2023年5月做了什么", d(2023, 5, 1), d(2023, 6, 1)),
        ("2023年5月8日的会议", d(2023, 5, 8), d(2023, 5, 9)),
        ("三天前吃了什么", d(2026, 11, 22), d(2026, 11, 23)),
        ("上个月", d(2026, 10, 1), d(2026, 11, 1)),
    ],
)
def test_windows(query: str, start: datetime, end: datetime) -> None:
    window = parse_query_window(query, NOW)
    assert window is not None
    assert (window.start, window.end) == (start, end)
    assert window.contains(start) and not window.contains(end)


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("Where did I live before 2023?", None, d(2023, 1, 1)),
        ("我2024年之前住在哪", None, d(2024, 1, 1)),
        ("What changed after 2024?", d(2025, 1, 1), None),
        ("since March 2024", d(2024, 3, 1), None),
    ],
)
def test_open_windows(query: str, start: datetime | None, end: datetime | None) -> None:
    window = parse_query_window(query, NOW)
    assert window is not None
    assert (window.start, window.end) == (start, end)


def test_last_n_is_a_range_up_to_now() -> None:
    window = parse_query_window("the last three months", NOW)
    assert window is not None and window.start is not None
    assert window.contains(NOW) and not window.contains(d(2026, 8, 1))


@pytest.mark.parametrize(
    "query",
    ["Where do I live?", "What is my dog's name?", "I have 2023 reasons", "Room 2023-99", ""],
)
def test_no_time(query: str) -> None:
    window = parse_query_window(query, NOW)
    assert window is None


def test_invalid_dates_are_ignored() -> None:
    assert parse_query_window("on 2023-02-30", NOW) is None
