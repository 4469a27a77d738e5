"""Coverage of the services under test, the session's side: combine their data on the host and report.

The stack runs the measured services under coverage.py and stops them gracefully
(``stack/coverage.py``); once it is down, the data files they wrote are combined into one
data file under ``coverage_dir``, their container paths mapped to the host's, and reported
(a terminal table, HTML and XML). The berth's coverage directory goes either way. The host
needs coverage.py for that, the ``coverage`` extra (``pip install 'dockyard[coverage]'``).
"""

from __future__ import annotations

import importlib.util
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from dockyard.errors import DockyardError
from dockyard.stack.coverage import ServiceCoverage


@dataclass(frozen=True)
class CoverageResult:
    """What one session's services were measured to run."""

    data_file: Path
    html: Path  # index.html of the HTML report
    xml: Path
    percent: float
    report: str  # coverage.py's terminal table
    data_files: int  # how many process data files were combined
    silent: tuple[str, ...]  # measured services that wrote no data


def require_coverage() -> None:
    """Fail before anything starts when the host cannot combine: coverage.py is missing here."""
    if importlib.util.find_spec("coverage") is None:
        raise DockyardError(
            "coverage of the services needs coverage.py on the host, to combine their data",
            remedy="install it with dockyard's extra: `pip install 'dockyard[coverage]'` (or `pip install coverage`)",
        )


def collect(coverage: ServiceCoverage) -> CoverageResult | None:
    """Combine, map and report what the measured services wrote; None when none wrote anything.

    The berth's coverage directory is removed afterwards, whatever happens.
    """
    try:
        files = coverage.data_files()
        if not files:
            return None
        return _combine(coverage, files)
    finally:
        coverage.remove()


def _combine(coverage: ServiceCoverage, files: list[Path]) -> CoverageResult:
    import coverage as coverage_py  # noqa: PLC0415 - the optional extra, only when services were measured

    # Copies of our own: the containers' files belong to whatever user the service ran as.
    work = coverage.dir / "combine"
    work.mkdir(exist_ok=True)
    for path in files:
        shutil.copyfile(path, work / path.name)
    rc = coverage.dir / "combine.rc"
    rc.write_text(coverage.paths_rc())
    out = coverage.settings.coverage_dir
    out.mkdir(parents=True, exist_ok=True)
    data_file = out / ".coverage"
    # Two sessions of this project ending at once would write one data file together.
    with FileLock(out / ".coverage.lock"):
        data_file.unlink(missing_ok=True)  # this session's services alone, not an earlier run's
        cov = coverage_py.Coverage(data_file=str(data_file), config_file=str(rc))
        cov.combine([str(work)], keep=False)
        cov.save()
        text = io.StringIO()
        percent = cov.report(file=text, ignore_errors=True, skip_empty=True)
        html = out / "html"
        cov.html_report(directory=str(html), ignore_errors=True, skip_empty=True)
        xml = out / "coverage.xml"
        cov.xml_report(outfile=str(xml), ignore_errors=True, skip_empty=True)
    wrote = {m.service for m in coverage.measured if any(f.name.startswith(f".coverage.{m.service}.") for f in files)}
    silent = tuple(s for s in coverage.services if s not in wrote)
    return CoverageResult(data_file, html / "index.html", xml, percent, text.getvalue(), len(files), silent)
