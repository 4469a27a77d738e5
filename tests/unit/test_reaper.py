"""``cleanup --older-than``: durations, and the ones that must never parse."""

from __future__ import annotations

import pytest

from dockyard.pool.reaping import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        ("0", 0.0),
        (" 2H ", 7200.0),
        ("0.5", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "h",
        "abc",
        "10x",
        "m5",
        "1 day",
        "5mm",
        "-5m",  # would select every resource, held ones too
        "-1",
        "nan",
        "inf",
        "1e400s",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; use e\.g\. 90s"):
        parse_duration(text)
