"""CI-native output: folds and the step summary, with GitHub Actions' and GitLab's variables set.

What was written is read back: the stderr markers the runner folds on, and the Markdown
file GitHub renders as the job summary.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.pool.berth import Berth
from dockyard.pool.lease import LeaseRecord
from dockyard.portblock import PortBlock
from dockyard.sessions.run import summarise
from dockyard.shards.junit import Counts
from dockyard.shards.shard import ShardRun
from dockyard.shards.summary import Summary
from dockyard.ui import ci
from dockyard.ui import console as output

CI = Callable[..., Path]


@pytest.fixture
def in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CI]:
    """``in_ci("github" | "gitlab" | None)``: exactly that CI's variables; the step summary file."""

    def make(service: str | None, **env: str) -> Path:
        for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITLAB_CI", ci.OUTPUT_ENV, "FORCE_COLOR"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CI", "true")
        step_summary = tmp_path / "step_summary.md"
        if service == "github":
            monkeypatch.setenv("GITHUB_ACTIONS", "true")
            monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
        elif service == "gitlab":
            monkeypatch.setenv("GITLAB_CI", "true")
            # Were it set by mistake, GitLab has no such page: nothing may be written there.
            monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        output.console.cache_clear()
        return step_summary

    yield make
    output.console.cache_clear()


def test_which_ci(in_ci: CI) -> None:
    in_ci(None)
    assert ci.kind() is None
    in_ci("github")
    assert ci.kind() == "github"
    in_ci("gitlab")
    assert ci.kind() == "gitlab"
    in_ci("github", **ci.child_env())  # a shard writing to its log file
    assert ci.kind() is None


def test_github_folds_between_group_markers_even_on_failure(in_ci: CI) -> None:
    in_ci("github")
    out = io.StringIO()

    def build() -> None:
        with ci.fold("dockyard: building\nimages", out):
            out.write("step 1\n")
            raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        build()
    assert out.getvalue() == "::group::dockyard: building images\nstep 1\n::endgroup::\n"


def test_gitlab_folds_in_a_collapsed_section(in_ci: CI) -> None:
    in_ci("gitlab")
    out = io.StringIO()
    with ci.fold("dockyard: images and services", out):
        out.write("web: healthy\n")
    first, inner, last = out.getvalue().split("\n")[:-1]  # not splitlines: \r is part of a marker
    start = re.fullmatch(
        r"\x1b\[0Ksection_start:(\d+):([A-Za-z0-9_.-]+)\[collapsed=true\]\r\x1b\[0Kdockyard: images and services", first
    )
    end = re.fullmatch(r"\x1b\[0Ksection_end:(\d+):([A-Za-z0-9_.-]+)\r\x1b\[0K", last)
    assert start is not None
    assert end is not None
    assert inner == "web: healthy"
    assert start[2] == end[2]  # the same section ends
    assert int(start[1]) <= int(end[1])
    with ci.fold("again", out):
        pass
    assert re.findall(r"section_start:\d+:(\S+)\[", out.getvalue())[1] != start[2]  # a name per section


def test_elsewhere_nothing_is_folded_or_summarised(in_ci: CI) -> None:
    step_summary = in_ci(None)
    out = io.StringIO()
    with ci.fold("x", out):
        out.write("line\n")
    assert out.getvalue() == "line\n"
    assert ci.step_summary("# x") is None
    assert not step_summary.exists()


def test_the_progress_reporter_is_folded(in_ci: CI, capsys: pytest.CaptureFixture[str]) -> None:
    in_ci("github")
    with output.reporter() as progress:
        progress.stack_ready("demo-1", 3.0)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "::group::dockyard: images and services"
    assert err[-1] == "::endgroup::"
    assert len(err) > 2


def test_markdown_cells_are_escaped() -> None:
    text = ci.markdown_table("t", ["a", "b"], [["x|y", "two\nlines"]])
    assert text.splitlines() == ["### t", "", "| a | b |", "| --- | --- |", "| x\\|y | two lines |"]


def _berth() -> Berth:
    record = LeaseRecord.for_current_process(3, "demo-3", PortBlock(20300, 100))
    berth = Berth(3, "demo-3", PortBlock(20300, 100), Path("/nowhere/3.lock"), record)
    berth.ports = {"backend": {8000: 20300}}
    return berth


def test_the_run_summary_goes_to_the_github_step_summary(in_ci: CI, capsys: pytest.CaptureFixture[str]) -> None:
    step_summary = in_ci("github")
    step_summary.write_text("earlier step\n")
    summarise(_berth(), {"acquire": 0.1, "up": 9.5, "run": 20.0, "down": 1.2}, 0, [])
    text = step_summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never overwritten
    assert "### dockyard: run passed" in text
    assert "| **berth** | `3 (demo-3), ports 20300-20399` |" in text
    assert "| **stack ready in** | `9.50s` |" in text
    assert "dockyard: run passed" in capsys.readouterr().err  # the log keeps its own summary


def test_gitlab_gets_no_step_summary(in_ci: CI) -> None:
    step_summary = in_ci("gitlab")
    summarise(_berth(), {"acquire": 0.1, "run": 1.0}, 1, [])
    assert not step_summary.exists()


def test_the_parallel_summary_goes_to_the_github_step_summary(
    in_ci: CI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    step_summary = in_ci("github")
    done = ShardRun(1, 2, ["t::1"], tmp_path, exit_code=0, wall=30.0, counts=Counts(1, 1, 0, 0))
    done.report = {
        "index": 0,
        "project": "demo-0",
        "port_block": [20000, 20099],
        "timings": {"up": 9.0, "run": 20.0},
        "held": [0.0, 30.0],
    }
    failed = ShardRun(2, 2, ["t::2"], tmp_path, exit_code=1, wall=31.0, counts=Counts(1, 0, 1, 0))
    failed.report = {
        "index": 1,
        "project": "demo-1",
        "port_block": [20100, 20199],
        "timings": {"up": 9.5},
        "held": [0.0, 31.0],
    }
    Summary.of([done, failed], {"t::1": 1.0, "t::2": 1.0}, 32.0, {"junit": "", "artifacts": []}).show()
    lines = step_summary.read_text().splitlines()
    assert lines[0] == "### dockyard parallel"
    assert lines[2].startswith("| shard | berth | project | port block |")
    assert lines[4].startswith("| 1/2 | 0 | demo-0 | 20000-20099 |")
    assert lines[5].endswith("| failed (1) |")
    assert lines[6].startswith("| total | 2 |")
    assert "dockyard parallel" in capsys.readouterr().out  # the table still goes to stdout
