"""A holder's word on which containers it saw ready, beside the berth's lock; no Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.sessions.api import seen_ready, seen_ready_path


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    return tmp_path / "berth-3.lock"


def test_the_word_of_this_lease_is_read(lock: Path) -> None:
    seen_ready_path(lock).write_text(json.dumps({"lease": "L1", "passed": {"abc": "2026-12-03T08:00:00Z"}}))
    assert seen_ready(lock, "L1") == {"abc": "2026-12-03T08:00:00Z"}


def test_another_lease_s_word_is_not_taken(lock: Path) -> None:
    seen_ready_path(lock).write_text(json.dumps({"lease": "L0", "passed": {"abc": "2026-12-03T08:00:00Z"}}))
    assert seen_ready(lock, "L1") == {}


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"lease": "L1"}', '{"lease": "L1", "passed": 3}'])
def test_no_word_or_a_broken_one_leaves_the_engine_s_word_alone(lock: Path, text: str) -> None:
    if text:
        seen_ready_path(lock).write_text(text)
    assert seen_ready(lock, "L1") == {}
