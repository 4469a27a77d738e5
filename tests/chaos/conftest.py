"""The chaos suite's options, its tally and its one-line summary.

Short by default (what CI runs); the long version is chosen by hand:

    nox -s chaos -- --chaos-long                    # or DOCKYARD_CHAOS_LONG=1
    pytest tests/chaos -p no:randomly --chaos-trials 30 --chaos-soak 5 --chaos-seed 1234

The long run sends 84 signal trials (at least 8 SIGKILLs landed per phase, 50 in all), 20
soak rounds and loses an engine mid-session. Either run fails at the end if fewer SIGKILLs
landed in their phases than its plan sent, or if no two soak sessions held berths at once.

The seed of the random kill moments is printed in the header and the summary; give it back
with DOCKYARD_CHAOS_SEED / --chaos-seed to replay a run. Not for xdist: the trials are drawn
at collection, and the timings are the point.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import integration.helpers

# The integration suite's base image, project factory and leak check, reused as they are.
from integration.conftest import base_image, make_project, no_leftovers, orphans_alone
from integration.helpers import TOKEN, ctrl_c_reaches_children, docker, ensure_base_image

from .host import PortClaims
from .tally import Tally, count_of, is_long, tally_if_any, tally_of

# The chaos stacks run on a tag of the base image that is this run's own: a test elsewhere on
# the host that removes the shared tag (or bootstraps it anew) mid-run only untags it then, and
# no service of ours goes to pull it. Set before the test modules import IMAGE.
integration.helpers.IMAGE = f"it{TOKEN}-chaos-base:dockyard"

# The Ctrl-C trials need sessions that see SIGINT, however this run was started.
ctrl_c_reaches_children()

__all__ = ["base_image", "make_project", "no_leftovers", "orphans_alone"]  # fixtures: pytest finds them here

REPORT = ".dockyard/chaos.json"
_SHORTFALLS = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--chaos-trials``, ``--chaos-soak``, ``--chaos-seed`` (when tests/chaos is on the command line)."""
    group = parser.getgroup("chaos", "dockyard chaos suite")
    group.addoption("--chaos-trials", type=int, default=None, help="Signal trials (env DOCKYARD_CHAOS_TRIALS).")
    group.addoption("--chaos-soak", type=int, default=None, help="Soak rounds (env DOCKYARD_CHAOS_SOAK).")
    group.addoption("--chaos-seed", type=int, default=None, help="Seed of the kill moments (env DOCKYARD_CHAOS_SEED).")
    group.addoption(
        "--chaos-long",
        action="store_true",
        default=None,
        help="The long run: 84 trials, 20 soak rounds, the engine lost mid-session (env DOCKYARD_CHAOS_LONG=1).",
    )


@pytest.fixture(scope="session", autouse=True)
def run_image(base_image: str) -> Iterator[str]:
    """This run's tag of the base image, made first (a second engine loads it); untagged at the end."""
    docker("tag", base_image, integration.helpers.IMAGE)
    yield integration.helpers.IMAGE
    docker("rmi", integration.helpers.IMAGE, check=False)


@pytest.fixture(autouse=True)
def base_image_still_there(run_image: str) -> str:
    """This run's base image tag, made again if something on the host removed the image meanwhile.

    A long run shares the engine with whatever else runs there; a missing image would fail
    trials for a reason that is not dockyard's (the build tries to pull it).
    """
    if not docker("images", "-q", run_image).strip():
        docker("tag", ensure_base_image(), run_image)
    return run_image


@pytest.fixture(scope="session")
def chaos_tally(pytestconfig: pytest.Config) -> Tally:
    """What the chaos tests found, summed over the session."""
    return tally_of(pytestconfig)


@pytest.fixture(scope="session")
def chaos_ports() -> Iterator[PortClaims]:
    """Port ranges checked free and claimed for this run (``chaos_ports.take(20)`` -> ``"A-B"``)."""
    claims = PortClaims()
    yield claims
    claims.release()


def pytest_report_header(config: pytest.Config) -> str:
    """The seed, so that a failing run can be replayed."""
    trials, soak = count_of(config, "trials"), count_of(config, "soak")
    long = " long" if is_long(config) else ""
    return f"chaos:{long} seed={tally_of(config).seed} trials={trials} soak={soak} (DOCKYARD_CHAOS_SEED replays)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when fewer SIGKILLs landed in their phases than planned, or the soak never overlapped.

    Only when every planned trial ran (a ``-k`` selection counts nothing).
    """
    tally = tally_if_any(session.config)
    if tally is None or tally.started_trials < len(tally.planned) or tally.soak_runs < tally.soak_planned:
        return
    problems = tally.shortfalls(is_long(session.config))
    if problems:
        session.config.stash[_SHORTFALLS] = problems
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line of figures, and the JSON report beside the artifacts."""
    tally = tally_if_any(config)
    if tally is None or not tally.touched:
        return
    path = config.rootpath / REPORT
    tally.write(path)
    terminalreporter.write_sep("-", "dockyard chaos")
    for problem in config.stash.get(_SHORTFALLS, []):
        terminalreporter.write_line(f"chaos: FAILED: {problem}", red=True)
    terminalreporter.write_line(tally.line())
    terminalreporter.write_line(f"chaos: report in {path}")
