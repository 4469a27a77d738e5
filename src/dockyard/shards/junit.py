"""JUnit XML: pytest's per-test times and outcomes, and one merged report of many shards."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import DockyardError

MERGED_NAME = "dockyard parallel"  # the <testsuites> name of a merged report: its suites are labelled


def junit_key(nodeid: str) -> tuple[str, str]:
    """The (classname, name) pytest's JUnit XML gives a node id (its ``mangle_test_address``)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def testcases(root: ET.Element) -> list[ET.Element]:
    """Every ``<testcase>`` of a JUnit document (``<testsuites>`` or a lone ``<testsuite>``)."""
    return list(root.iter("testcase"))


def junit_durations(root: ET.Element, nodeids: Iterable[str]) -> dict[str, float]:
    """Node id -> seconds (setup + call + teardown) of the tests of ``nodeids`` in ``root``."""
    by_key = {junit_key(t): t for t in nodeids}
    found = {}
    for case in testcases(root):
        nodeid = by_key.get((case.get("classname", ""), case.get("name", "")))
        if nodeid is not None:
            found[nodeid] = float(case.get("time", "0") or 0)
    return found


@dataclass(frozen=True)
class Counts:
    """Outcomes of the tests in one JUnit document."""

    tests: int = 0
    passed: int = 0
    failed: int = 0  # failures and errors
    skipped: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tests + other.tests,
            self.passed + other.passed,
            self.failed + other.failed,
            self.skipped + other.skipped,
        )


def junit_counts(root: ET.Element) -> Counts:
    """Count the testcases of ``root`` by outcome (an error in setup or teardown is a failure)."""
    passed = failed = skipped = 0
    for case in testcases(root):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return Counts(passed + failed + skipped, passed, failed, skipped)


def merge_junit(documents: Iterable[tuple[str, ET.Element]]) -> ET.Element:
    """One ``<testsuites>`` holding every suite of ``(label, document)``, suites named by label.

    An empty label keeps the suites' names (they were labelled by an earlier merge). The
    merged time is the longest suite's, not the sum: the shards ran at the same time.
    """
    merged = ET.Element("testsuites", name=MERGED_NAME)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    elapsed = 0.0
    for label, root in documents:
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for suite in suites:
            if label:
                suite.set("name", f"{suite.get('name', 'pytest')} ({label})")
            for key in totals:
                totals[key] += int(suite.get(key, "0") or 0)
            elapsed = max(elapsed, float(suite.get("time", "0") or 0))
            merged.append(suite)
    for key, value in totals.items():
        merged.set(key, str(value))
    merged.set("time", f"{elapsed:.3f}")
    return merged


def read_xml(path: Path) -> ET.Element | None:
    """The root of the JUnit file a shard's pytest wrote, or None when it wrote none (or half)."""
    try:
        return ET.parse(path).getroot()  # noqa: S314 - our own pytest's output
    except (FileNotFoundError, ET.ParseError):
        return None


def write_xml(root: ET.Element, path: Path) -> None:
    """Write ``root`` as an XML file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def merge_junit_files(paths: Iterable[Path]) -> tuple[ET.Element, list[Path]]:
    """One JUnit document of the XML files ``paths`` name (a directory: every ``*.xml`` under it).

    For a CI matrix of ``--shard K/N`` jobs: each job's ``.dockyard/junit.xml`` already names
    its suites after its shard and keeps them; other files' suites are labelled by their path.
    Returns the merged document and the files read.
    """
    remedy = "give JUnit XML files, or directories holding them, after `--`"
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("*.xml"))
        elif path.is_file():
            files.append(path)
        else:
            raise DockyardError(f"{path}: no such file or directory", remedy=remedy)
    if not files:
        raise DockyardError("no JUnit XML files to merge", remedy=remedy)
    documents = []
    for file in files:
        try:
            root = ET.parse(file).getroot()  # noqa: S314 - pytest's reports of the user's own runs
        except ET.ParseError as exc:
            raise DockyardError(f"{file} is not XML: {exc}", remedy=remedy) from None
        if root.tag not in ("testsuites", "testsuite"):
            raise DockyardError(f"{file} is not a JUnit report (its root is <{root.tag}>)", remedy=remedy)
        documents.append(("" if root.get("name") == MERGED_NAME else file.as_posix(), root))
    return merge_junit(documents), files
