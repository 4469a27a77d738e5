"""The chaos suite's options, its tally and its one-line summary.

Short by default (what CI runs); the long version is chosen by hand:

    DOCKYARD_CHAOS_TRIALS=80 DOCKYARD_CHAOS_SOAK=20 nox -s chaos
    pytest tests/chaos -p no:randomly --chaos-trials 80 --chaos-soak 20 --chaos-seed 1234

The seed of the random kill moments is printed in the header and the summary; give it back
with DOCKYARD_CHAOS_SEED / --chaos-seed to replay a run. Not for xdist: the trials are drawn
at collection, and the timings are the point.
"""

from __future__ import annotations

import pytest

# The integration suite's base image, project factory and leak check, reused as they are.
from integration.conftest import base_image, make_project, no_leftovers, orphans_alone
from integration.helpers import ensure_base_image

from .harness import SOAK_DEFAULT, TRIALS_DEFAULT, Tally, count_of, tally_if_any, tally_of

__all__ = ["base_image", "make_project", "no_leftovers", "orphans_alone"]  # fixtures: pytest finds them here

REPORT = ".dockyard/chaos.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--chaos-trials``, ``--chaos-soak``, ``--chaos-seed`` (when tests/chaos is on the command line)."""
    group = parser.getgroup("chaos", "dockyard chaos suite")
    group.addoption("--chaos-trials", type=int, default=None, help="Signal trials (env DOCKYARD_CHAOS_TRIALS).")
    group.addoption("--chaos-soak", type=int, default=None, help="Soak rounds (env DOCKYARD_CHAOS_SOAK).")
    group.addoption("--chaos-seed", type=int, default=None, help="Seed of the kill moments (env DOCKYARD_CHAOS_SEED).")


@pytest.fixture(autouse=True)
def base_image_still_there(base_image: str) -> str:
    """The base image, bootstrapped again if something on the host removed it since the start.

    A long run shares the engine with whatever else runs there; a missing image would fail
    trials for a reason that is not dockyard's (the build tries to pull it).
    """
    return ensure_base_image()


@pytest.fixture(scope="session")
def chaos_tally(pytestconfig: pytest.Config) -> Tally:
    """What the chaos tests found, summed over the session."""
    return tally_of(pytestconfig)


def pytest_report_header(config: pytest.Config) -> str:
    """The seed, so that a failing run can be replayed."""
    trials, soak = count_of(config, "trials", TRIALS_DEFAULT), count_of(config, "soak", SOAK_DEFAULT)
    return f"chaos: seed={tally_of(config).seed} trials={trials} soak={soak} (DOCKYARD_CHAOS_SEED replays)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line of figures, and the JSON report beside the artifacts."""
    tally = tally_if_any(config)
    if tally is None or not tally.touched:
        return
    path = config.rootpath / REPORT
    tally.write(path)
    terminalreporter.write_sep("-", "dockyard chaos")
    terminalreporter.write_line(tally.line())
    terminalreporter.write_line(f"chaos: report in {path}")
