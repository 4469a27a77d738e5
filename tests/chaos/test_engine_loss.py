"""The engine lost mid-session: a clear error within a deadline, the lease kept, reaped once it is back.

The engine is a second dockerd on this machine (see ``integration/second_engine.py``); it is
stopped as a shutdown stops it (its containers stopped, not removed; its networks forgotten,
see ``SecondEngine.lost``) while a session's test runs on it. The session's teardown finds
no engine: it must fail within :data:`LOST_DEADLINE` saying which daemon is unreachable,
and keep its lease record, since what it could not remove is still on that engine. Once
the engine is back, the next holder of the berth reaps the leftovers before it starts its
own stack.

Starting a second daemon takes a while on a small machine: part of the long run only
(``--chaos-long``), or asked for with ``DOCKYARD_CHAOS_ENGINE=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import dockyard
from dockyard import ExitCode
from dockyard.pool.lease import read_record
from integration.helpers import Projects, clean_env, compose, service
from integration.second_engine import SecondEngine, second_engine, unavailable_reason

from .host import PortClaims, poll, pool_not_free
from .session import Session, run_session
from .tally import Tally, is_long

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(400)]

LOST_DEADLINE = 30.0  # seconds from the engine gone to the session's exit; a hang fails the test
# The session's test: it runs until told that the engine is gone.
WAIT = "echo engine-test-running; while [ ! -e engine-gone ]; do sleep 0.05; done"
STACK = compose(
    service("web", ports=["80"], command=["sleep", "infinity"]),
    service("cache", extra=["volumes: [data:/data]"]),
    volumes=["data"],
)


@pytest.fixture(scope="module")
def engine2(pytestconfig: pytest.Config) -> Iterator[SecondEngine]:
    """A second dockerd for this module (long run only), gone with its data root afterwards."""
    if not (is_long(pytestconfig) or os.environ.get("DOCKYARD_CHAOS_ENGINE") == "1"):
        pytest.skip("the long run's (--chaos-long or DOCKYARD_CHAOS_ENGINE=1): a second dockerd takes a while")
    if reason := unavailable_reason():
        pytest.fail(f"a second Docker engine cannot run here: {reason}")
    with second_engine() as engine:
        yield engine


def test_an_engine_lost_mid_session(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally, engine2: SecondEngine
) -> None:
    project = make_project("lost", chaos_ports.take(10), STACK, max_berths=1)
    settings = project.settings
    env = clean_env(DOCKER_HOST=engine2.endpoint)
    session = Session.start(project, ["bash", "-c", WAIT], env=env, name="lost")
    try:
        assert session.enter("test"), session.output()
        record = read_record(settings.lock_dir / "berth-0.json")
        assert record is not None
        assert record.engine == engine2.endpoint
        lease = f"dockyard.lease={record.lease_id}"
        assert engine2.managed(lease), "nothing of the session on the second engine: the test proves nothing"
        with engine2.lost():
            (project.root / "engine-gone").touch()  # the test ends; its teardown meets no engine
            code = session.finish(timeout=LOST_DEADLINE)
            output = session.output()
            assert code == ExitCode.DOCKER_UNAVAILABLE, output
            assert f"the Docker daemon at {engine2.endpoint} is unreachable" in output
            assert "Traceback" not in output
            kept = read_record(settings.lock_dir / "berth-0.json")
            assert kept == record, "the lease record went with the session: nothing would know what to reap"
    except BaseException:
        session.kill()
        raise
    chaos_tally.faults += 1
    left = engine2.managed(lease)
    assert left, "the stopped engine kept nothing of the session: nothing to reap"

    # The engine is back: the next holder reaps what the lost session left, then runs its own stack.
    code, output = run_session(project, ["true"], env=env, name="next")
    assert code == 0, output
    assert f"berth 0: reaped what pid {record.pid} left behind" in output
    found, _took = poll(lambda: engine2.managed(lease) + pool_not_free(settings))
    chaos_tally.leaks += len(found)
    chaos_tally.note("engine-lost", exit=code, left=found)
    assert not found, found
    assert next(dockyard.BerthPool(settings).statuses()).state is dockyard.State.FREE
