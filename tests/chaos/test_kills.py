"""Signals in every phase of `dockyard run -- CMD`: nothing outlives the session, no lock wedges.

Each trial starts a session on a small stack (an image it builds, a database-like service with
a volume, a web service waiting for it) and signals it at a random moment of one phase:
acquire (waiting for the berth, which the suite holds meanwhile), build, up, test, down or
release. The session's own phase marks say when it is there; a session that went past the
phase before a (frozen) look found it in it counts as missed, and the trial starts another,
up to :data:`ATTEMPTS`. SIGKILL, of the process or of its whole group, gives dockyard no
chance: its watchdog must reap within seconds. SIGTERM and SIGINT must tear down in order
before the session exits with 143 / 130. Either way the next session of the same pool gets
the same berth, at once, with nothing to reap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

import dockyard
from integration.helpers import IMAGE, TOKEN, Project, Projects, compose, docker, service

from .host import (
    REAP_DEADLINE,
    PortClaims,
    of_session,
    poll,
    pool_not_free,
    processes_naming,
    resources_labelled,
    wedged_locks,
)
from .session import EXIT_CODES, SIGNALS, Session, Strike, session_of
from .tally import ATTEMPTS, Tally, Trial, count_of, plan, tally_of

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(600)]

BUILT = f"it{TOKEN}-chaos-built:dockyard"  # the one image the stack builds (removed at the end)
BUILD_LABEL = f"chaos.token={TOKEN}"  # on that image, so on its build's intermediate containers too
WHO = f"chaos-{TOKEN}"  # what the web service answers
# A line server in Perl (the base image has no Python): answers every connection with $WHO.
SERVER = (
    '$$|=1; my $$s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die "listen: $$!";'
    ' print "web: serving as $$ENV{WHO}\\n";'
    ' while (my $$c = $$s->accept) { print $$c "$$ENV{WHO}\\n"; close $$c }'
)
# The test phase of a trial; the session's command line ends with the trial's marker.
TEST = "echo chaos-test-started; sleep 1.5; echo chaos-test-ending"
ACQUIRE_WINDOW = 1.0  # seconds of waiting for the berth within which an acquire-phase signal comes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per trial of the seeded plan."""
    if "trial" in metafunc.fixturenames:
        tally = tally_of(metafunc.config)
        tally.planned = plan(tally.seed, count_of(metafunc.config, "trials"))
        metafunc.parametrize("trial", tally.planned, ids=[t.id for t in tally.planned])


@pytest.fixture(scope="module")
def kill_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lock directory every trial's session shares (pytest makes it 0700, as dockyard wants)."""
    return tmp_path_factory.mktemp("kill-pool")


@pytest.fixture(scope="module")
def kill_ports(chaos_ports: PortClaims) -> str:
    """The port range of the trials' one-berth pool, checked free and claimed for this run."""
    return chaos_ports.take(20)


@pytest.fixture(scope="module", autouse=True)
def built_image() -> Iterator[None]:
    """Remove the trials' image, and the earlier builds of it, once the module is done."""
    yield
    docker("rmi", "-f", BUILT, check=False)
    docker("image", "prune", "-f", "--filter", f"label={BUILD_LABEL}", check=False)


def kill_project(make_project: Projects, pool: Path, ports: str, name: str = "kill") -> Project:
    """The trials' project: built image, database-like service with a volume, web waiting for it."""
    built = "\n".join(
        [
            "  built:",
            '    build: {context: image, args: {TRIAL: "stable"}}',
            f"    image: {BUILT}",
            '    command: ["sleep", "infinity"]',
            "    init: true",
            "    stop_grace_period: 1s",
            '    healthcheck: {test: ["CMD", "true"], interval: 1s, timeout: 5s, retries: 30}',
            "",
        ]
    )
    text = compose(
        service(
            "db",
            command=["bash", "-c", "sleep 1; touch /ready; exec sleep infinity"],
            health=["CMD", "test", "-f", "/ready"],
            extra=["volumes: [data:/data]"],
        ),
        service(
            "web",
            ports=["80"],
            command=["perl", "-MIO::Socket::INET", "-e", SERVER],
            health=["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"],
            extra=[f"environment: {{WHO: {WHO}}}", "depends_on: {db: {condition: service_healthy}}"],
        ),
        volumes=["data"],
    ).replace("services:\n", "services:\n" + built, 1)
    project = make_project(name, ports, text, lock_dir=str(pool), max_berths=1, health_timeout=60)
    # The build context is a directory of its own: the project root holds the session logs.
    (project.root / "image").mkdir()
    (project.root / "image" / "Dockerfile").write_text(
        f'FROM {IMAGE}\nARG TRIAL\nLABEL {BUILD_LABEL}\nRUN echo "$TRIAL" > /trial && sleep 1\n'
    )
    return project


def build_with(project: Project, argument: str) -> None:
    """Set the build argument: a new one makes the next session build the image again."""
    head, _, rest = project.compose.read_text().partition("args: {TRIAL: ")
    project.compose.write_text(head + "args: {TRIAL: " + json.dumps(argument) + "}" + rest.split("}", 1)[1])


def test_signal_in_its_phase(
    trial: Trial, make_project: Projects, kill_pool: Path, kill_ports: str, chaos_tally: Tally
) -> None:
    chaos_tally.started_trials += 1
    project = kill_project(make_project, kill_pool, kill_ports)
    settings = project.settings
    for attempt in range(ATTEMPTS):
        name = f"{trial.id}-{attempt}"
        marker = f"chaos-{TOKEN}-{name}"
        # Only a build-phase trial changes the build argument: the others find the image built.
        build_with(project, f"{chaos_tally.seed}-{name}" if trial.phase == "build" else "stable")
        # An acquire-phase session waits for the berth, which the suite holds meanwhile.
        holding = dockyard.acquire_berth(settings, with_ports=False) if trial.phase == "acquire" else nullcontext()
        with holding, session_of(project, ["bash", "-c", TEST, marker], name=name) as session:
            window = ACQUIRE_WINDOW if trial.phase == "acquire" else chaos_tally.span(trial.phase)
            # Each session that went past the phase first halves the delay: a moment late in a
            # phase whose length varies must not miss every time.
            strike = session.strike(trial.mode, trial.phase, trial.fraction * window / 2**attempt)
            code = session.finish()
        if trial.phase != "acquire":
            chaos_tally.learn(session)
        if strike is None:
            chaos_tally.missed += 1
            chaos_tally.note("missed", id=name, exit=code, phases=session.marks())
            if code != 0:
                chaos_tally.flaky += 1
                raise AssertionError(f"the session ended ({code}) before {trial.phase}:\n{session.output()}")
            assert_nothing_left(session, marker, settings, chaos_tally, orderly=True)
            continue
        expected = EXIT_CODES[SIGNALS[trial.mode][0]]
        if code not in expected:
            chaos_tally.flaky += 1
            raise AssertionError(
                f"{trial.mode} in {trial.phase}: exit {code}, expected {expected}:\n{session.output()}"
            )
        chaos_tally.trials += 1
        chaos_tally.land(strike)
        found, took = assert_nothing_left(
            session, marker, settings, chaos_tally, orderly=not trial.sigkill, strike=strike
        )
        chaos_tally.note(
            "trial", id=name, phase=trial.phase, mode=trial.mode, exit=code, reaped_in=round(took, 2), left=found
        )
        return
    raise AssertionError(f"{trial.mode} never landed in {trial.phase} in {ATTEMPTS} sessions")


def assert_nothing_left(
    session: Session,
    marker: str,
    settings: dockyard.Settings,
    tally: Tally,
    *,
    orderly: bool,
    strike: Strike | None = None,
) -> tuple[list[str], float]:
    """Nothing of the session in Docker, /proc or the pool (within the deadline after a SIGKILL).

    Then the next holder gets the berth at once, with nothing to reap. (What was found, seconds.)
    """
    record = session.record
    lease = record.lease_id if record else ""
    project = settings.project_name(0)
    override = settings.lock_dir / "berth-0.override.yml"

    def left() -> list[str]:
        return [
            *(of_session(project, lease) if record else []),
            *(f"process {p}" for p in processes_naming(marker, lease, project)),
            *pool_not_free(settings),
            *([f"file {override}"] if override.exists() else []),
        ]

    def built() -> list[str]:
        # The built service's container, or the intermediate container of an interrupted build:
        # the engine removes the latter on its own once the build's client is gone.
        return resources_labelled(BUILD_LABEL)

    if orderly:
        # An orderly exit: torn down and released before the process ended.
        found, took = left(), 0.0
        found += poll(built)[0]
    else:
        # No chance to tear down: the watchdog reaps, within seconds.
        found, _polled = poll(lambda: left() + built())
        took = time.time() - strike.at if strike else 0.0
        if not found and record is not None:  # a session killed before it held a berth left nothing to reap
            tally.reap_seconds.append(took)
    wedged = wedged_locks(settings)
    tally.wedged += len(wedged)
    tally.leaks += len(found)
    assert not found, (
        f"still there {took:.1f}s after the session ended ({session.proc.returncode}):\n"
        + "\n".join(found)
        + f"\n--- phases {session.marks()}; session output ---\n{session.output()}"
    )
    # The next session of the pool gets the berth at once: no lock wedged, nothing to reap.
    with dockyard.acquire_berth(settings, timeout=REAP_DEADLINE, with_ports=False) as berth:
        assert berth.index == 0
        assert berth.stale is None, f"the lease record of the signalled session was left: {berth.stale}"
    return found, took
