"""Signals at random moments of `dockyard run -- CMD`: nothing outlives the session, no lock wedges.

Each trial starts a session on a small stack (an image it builds, a database-like service with
a volume, a web service waiting for it), waits until the session is in the trial's phase
(build, up, test or down), lets a random delay pass and signals it. SIGKILL, of the process or
of its whole group, gives dockyard no chance: its watchdog must reap within seconds. SIGTERM and
SIGINT must tear down in order before the session exits with 143 / 130. Either way the next
session of the same pool gets the same berth, at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dockyard
from dockyard.pool.lease import read_record
from integration.helpers import IMAGE, TOKEN, Project, Projects, compose, docker, service

from .harness import (
    EXIT_CODES,
    REAP_DEADLINE,
    SIGNALS,
    TRIALS_DEFAULT,
    Session,
    Tally,
    Trial,
    count_of,
    of_session,
    plan,
    poll,
    pool_not_free,
    processes_naming,
    resources_labelled,
    run_session,
    tally_of,
)

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(300)]

PORTS = "31000-31019"  # below the ephemeral ports (32768-): no client socket squats them
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
PHASE_STARTS = {"build": "building ", "up": "starting ", "test": "chaos-test-started", "down": "chaos-test-ending"}
PROBE = """
import json, os, socket, sys
berth = json.loads(os.environ["DOCKYARD_BERTH"])
with socket.create_connection(("127.0.0.1", berth["ports"]["web"]["80"]), timeout=10) as conn:
    answer = conn.makefile().readline().strip()
print(f"berth {berth['index']}: web answered {answer!r}")
sys.exit(0 if answer == sys.argv[1] else 1)
"""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per trial of the seeded plan."""
    if "trial" in metafunc.fixturenames:
        config = metafunc.config
        trials = plan(tally_of(config).seed, count_of(config, "trials", TRIALS_DEFAULT))
        metafunc.parametrize("trial", trials, ids=[t.id for t in trials])


@pytest.fixture(scope="module")
def kill_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lock directory every trial's session shares (pytest makes it 0700, as dockyard wants)."""
    return tmp_path_factory.mktemp("kill-pool")


@pytest.fixture(scope="module", autouse=True)
def built_image() -> Iterator[None]:
    """Remove the trials' image, and the earlier builds of it, once the module is done."""
    yield
    docker("rmi", "-f", BUILT, check=False)
    docker("image", "prune", "-f", "--filter", f"label={BUILD_LABEL}", check=False)


def kill_project(make_project: Projects, pool: Path, build_arg: str) -> Project:
    """The trials' project: built image, database-like service with a volume, web waiting for it."""
    built = "\n".join(
        [
            "  built:",
            f"    build: {{context: image, args: {{TRIAL: {json.dumps(build_arg)}}}}}",
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
    project = make_project("kill", PORTS, text, lock_dir=str(pool), max_berths=1, health_timeout=60)
    # The build context is a directory of its own: the project root holds the session logs.
    (project.root / "image").mkdir()
    (project.root / "image" / "Dockerfile").write_text(
        f'FROM {IMAGE}\nARG TRIAL\nLABEL {BUILD_LABEL}\nRUN echo "$TRIAL" > /trial && sleep 1\n'
    )
    return project


def test_signal_at_a_random_moment(trial: Trial, make_project: Projects, kill_pool: Path, chaos_tally: Tally) -> None:
    # Only a build-phase trial changes the build argument: the others find the image built.
    build_arg = f"{chaos_tally.seed}-{trial.number}" if trial.phase == "build" else "stable"
    project = kill_project(make_project, kill_pool, build_arg)
    settings = project.settings
    marker = f"chaos-{TOKEN}-{trial.id}"
    session = Session.start(project, ["bash", "-c", TEST, marker], name=trial.id)
    try:
        if not session.reach(PHASE_STARTS[trial.phase]):
            chaos_tally.flaky += 1
            raise AssertionError(
                f"the session ended ({session.proc.returncode}) before {trial.phase}:\n{session.output()}"
            )
        record = read_record(settings.lock_dir / "berth-0.json")
        assert record is not None, f"no lease record while the session is in {trial.phase}:\n{session.output()}"
        time.sleep(trial.delay)  # the chaos itself: a random moment inside the phase (seeded)
        session.send(trial.mode)
        code = session.finish()
    except BaseException:
        session.kill()  # a failed trial must not leave its session running into the next one
        raise

    sig, _group = SIGNALS[trial.mode]
    chaos_tally.trials += 1
    landed = code in EXIT_CODES[sig]
    if landed:
        chaos_tally.kills += 1
        chaos_tally.sigkills += sig is signal.SIGKILL
    elif code == 0:
        chaos_tally.missed += 1  # it finished first: still, nothing may be left
    else:
        chaos_tally.flaky += 1
        raise AssertionError(
            f"{trial.mode} in {trial.phase}: exit {code}, expected {EXIT_CODES[sig]}:\n{session.output()}"
        )

    override = settings.lock_dir / "berth-0.override.yml"

    def left() -> list[str]:
        return [
            *of_session(record.project, record.lease_id),
            *(f"process {p}" for p in processes_naming(marker, record.lease_id)),
            *pool_not_free(settings),
            *([f"file {override}"] if override.exists() else []),
        ]

    def built() -> list[str]:
        # The built service's container, or the intermediate container of an interrupted build:
        # the engine removes the latter on its own once the build's client is gone.
        return resources_labelled(BUILD_LABEL)

    if landed and sig is signal.SIGKILL:
        # No chance to tear down: the watchdog reaps, within seconds.
        found, took = poll(lambda: left() + built())
        if not found:
            chaos_tally.reap_seconds.append(took)
    else:
        # An orderly exit: torn down and released before the process ended.
        found, took = left(), 0.0
        found += poll(built)[0]
    chaos_tally.note(
        "trial", id=trial.id, delay=trial.delay, exit=code, landed=landed, reaped_in=round(took, 2), left=found
    )
    if found:
        chaos_tally.leaks += len(found)
    assert not found, (
        f"{trial.mode} in {trial.phase} after {trial.delay}s (exit {code}): still there after {took:.1f}s:\n"
        + "\n".join(found)
        + f"\n--- session output ---\n{session.output()}"
    )

    # The next session of the pool gets the berth at once: no lock wedged, nothing to reap.
    with dockyard.acquire_berth(settings, timeout=REAP_DEADLINE, with_ports=False) as berth:
        assert berth.index == 0
        assert berth.stale is None, f"the lease record of the signalled session was left: {berth.stale}"


def test_a_session_killed_with_its_watchdog_is_reaped_by_the_next_one(
    make_project: Projects, kill_pool: Path, chaos_tally: Tally
) -> None:
    # An OOM kill or a reboot can take the watchdog too: then the next holder of the berth reaps.
    # Run after the trials, its next session also proves the pool still serves a working stack.
    project = kill_project(make_project, kill_pool, "stable")
    settings = project.settings
    marker = f"chaos-{TOKEN}-with-watchdog"
    session = Session.start(project, ["bash", "-c", TEST, marker], name="with-watchdog")
    try:
        assert session.reach(PHASE_STARTS["test"]), session.output()
        record = read_record(settings.lock_dir / "berth-0.json")
        assert record is not None
        watchdogs = [p for p in processes_naming(record.lease_id) if "dockyard.sessions.watchdog" in p]
        assert len(watchdogs) == 1, watchdogs
        os.kill(int(watchdogs[0].split(":", 1)[0]), signal.SIGKILL)
        session.send("killpg")
        code = session.finish()
    except BaseException:
        session.kill()
        raise
    assert code == -signal.SIGKILL
    chaos_tally.trials += 1
    chaos_tally.kills += 1
    chaos_tally.sigkills += 1
    abandoned = f"dockyard.lease={record.lease_id}"
    assert resources_labelled(abandoned), "nothing was left to reap: the test proves nothing"
    status = next(dockyard.BerthPool(settings).statuses())
    assert status.state is dockyard.State.STALE
    assert status.record == record

    code, output = run_session(project, [sys.executable, "-c", PROBE, WHO], name="next")
    if code != 0:
        chaos_tally.flaky += 1
    assert code == 0, output
    assert f"berth 0: web answered {WHO!r}" in output
    assert f"berth 0: reaped what pid {record.pid} left behind" in output
    left = resources_labelled(abandoned) + pool_not_free(settings)
    chaos_tally.leaks += len(left)
    chaos_tally.note("trial", id="killpg-with-watchdog", exit=-9, landed=True, left=left)
    assert not left, left
