"""Phase marks: what `dockyard run` writes for the chaos suite, and only when asked. No Docker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.portblock import PortBlock
from dockyard.sessions.phases import PHASES_ENV, Marking, mark, read_marks
from dockyard.ui.progress import BUILT, CACHED, Lines


def test_nothing_is_written_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PHASES_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    mark("acquire")
    assert list(tmp_path.iterdir()) == []


def test_marks_are_lines_of_phase_pid_and_time_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "phases"
    monkeypatch.setenv(PHASES_ENV, str(path))
    mark("acquire")
    mark("up")
    marks = read_marks(path)
    assert [(phase, pid) for phase, pid, _at in marks] == [("acquire", os.getpid()), ("up", os.getpid())]
    assert marks[0][2] <= marks[1][2]
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_file_has_no_marks(tmp_path: Path) -> None:
    assert read_marks(tmp_path / "none") == []


def test_a_build_is_its_own_phase_inside_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "phases"
    monkeypatch.setenv(PHASES_ENV, str(path))
    lines: list[str] = []
    progress = Marking(Lines(lines.append))
    progress.image_done("cached:1", CACHED, 0.1)  # nothing built: still up
    progress.image_started("built:1", "web")
    progress.image_done("built:1", BUILT, 2.0)
    progress.stack_starting("p", ["web"], PortBlock.between(1, 2))
    assert [phase for phase, _pid, _at in read_marks(path)] == ["build", "up"]
    assert lines == [
        "image cached:1: cached",
        "image built:1: building (web)",
        "image built:1: built in 2.0s",
        "starting p on ports 1-2: web",
    ], "every event reaches the reporter inside"
