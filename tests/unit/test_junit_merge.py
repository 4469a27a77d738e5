"""`dockyard junit-merge`: the shards of a CI matrix, each on its own machine, as one report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from dockyard import DockyardError, ExitCode
from dockyard.cli import tasks
from dockyard.shards.junit import merge_junit, merge_junit_files, write_xml

PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="{errors}" failures="0" skipped="0" tests="{tests}"
 time="{time}">{cases}</testsuite></testsuites>"""


def pytest_xml(tests: int, errors: int = 0, time: float = 1.0) -> ET.Element:
    """A JUnit document as pytest writes it: ``tests`` passing cases, the first ``errors`` erroring."""
    cases = "".join(
        f'<testcase classname="t" name="test_{n}" time="0.1">{"<error/>" if n < errors else ""}</testcase>'
        for n in range(tests)
    )
    return ET.fromstring(PYTEST_XML.format(tests=tests, errors=errors, time=time, cases=cases))  # noqa: S314


def ci_shard(directory: Path, k: int, n: int, tests: int, errors: int = 0) -> Path:
    """What `dockyard parallel --shard K/N` leaves on one CI machine, downloaded into ``directory``."""
    path = directory / f"junit-shard-{k}" / "junit.xml"
    write_xml(merge_junit([(f"shard {k}/{n}", pytest_xml(tests, errors, time=10.0 * k))]), path)
    return path


def names_and_totals(root: ET.Element) -> tuple[list[str | None], tuple[str | None, ...]]:
    """The suite names and the totals of a merged document."""
    names = [suite.get("name") for suite in root.findall("testsuite")]
    return names, tuple(root.get(key) for key in ("tests", "failures", "errors", "skipped", "time"))


def test_the_shards_of_a_matrix_merge_with_their_labels_kept(tmp_path: Path) -> None:
    for k in (1, 2, 3):
        ci_shard(tmp_path / "junit", k, 3, tests=k + 1, errors=1 if k == 2 else 0)
    merged, files = merge_junit_files([tmp_path / "junit"])  # a directory: every *.xml under it
    assert len(files) == 3
    names, totals = names_and_totals(merged)
    assert names == ["pytest (shard 1/3)", "pytest (shard 2/3)", "pytest (shard 3/3)"]  # not relabelled
    assert totals == ("9", "0", "1", "0", "30.000")  # the jobs ran at once: the longest, not the sum
    again, _ = merge_junit_files([tmp_path / "junit"])
    assert names_and_totals(again) == (names, totals)


def test_plain_pytest_reports_are_labelled_by_their_path(tmp_path: Path) -> None:
    for name in ("a.xml", "b.xml"):
        write_xml(pytest_xml(2), tmp_path / name)
    merged, _ = merge_junit_files([tmp_path / "a.xml", tmp_path / "b.xml"])
    names, totals = names_and_totals(merged)
    assert names == [f"pytest ({tmp_path.as_posix()}/a.xml)", f"pytest ({tmp_path.as_posix()}/b.xml)"]
    assert totals[0] == "4"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("not <xml", "is not XML"),
        ("<html><body/></html>", "is not a JUnit report"),
    ],
)
def test_what_cannot_be_merged_is_named(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "report.xml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DockyardError, match=message):
        merge_junit_files([path])


def test_a_directory_without_reports_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DockyardError, match="no JUnit XML files"):
        merge_junit_files([tmp_path])


def test_the_task_writes_the_merged_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ci_shard(tmp_path / "in", 1, 2, tests=3)
    ci_shard(tmp_path / "in", 2, 2, tests=2, errors=2)
    out = tmp_path / "out" / "merged.xml"
    tasks.junit_merge(Context(remainder=str(tmp_path / "in")), output=str(out))
    captured = capsys.readouterr()
    assert "merged 2 file(s)" in captured.out + captured.err
    assert names_and_totals(ET.parse(out).getroot())[1][:3] == ("5", "0", "2")  # noqa: S314
    with pytest.raises(Exit) as failed:
        tasks.junit_merge(Context(remainder=str(tmp_path / "missing")), output=str(out))
    assert failed.value.code == ExitCode.FAILURE
