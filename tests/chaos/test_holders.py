"""SIGKILL of every kind of process that holds a berth: each one's stack is reaped within seconds.

`dockyard run` and its process group are the trials' (test_kills.py); here the others: the
keeper that holds a berth after `dockyard up`, `dockyard parallel` (the parent, and one of
its shards), pytest holding a berth of its own through the plugin, and a session killed
together with its watchdog (then the next holder reaps). After each: nothing labelled for
the holder's leases is left within :data:`REAP_DEADLINE` (the time it took is counted), no
lock is wedged, and no process of those leases survives (compose children included).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

import dockyard
from dockyard.pool.lease import LeaseRecord
from dockyard.sessions.keeper_client import is_keeper
from integration.helpers import Project, Projects, clean_env, compose, service, wait_for

from .host import PortClaims, alive, of_session, poll, pool_not_free, processes_naming, resources_labelled, wedged_locks
from .session import Session, run_session
from .tally import Tally

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(300)]

SERVER = (
    '$$|=1; my $$s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die "listen: $$!";'
    ' while (my $$c = $$s->accept) { print $$c "web\\n"; close $$c }'
)
STACK = compose(
    service(
        "web",
        ports=["80"],
        command=["perl", "-MIO::Socket::INET", "-e", SERVER],
        health=["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"],
    ),
    service("cache", extra=["volumes: [data:/data]"]),
    volumes=["data"],
)
# Tests that say they run (a file per process) and then hold their stack until told to go.
HOLDING = """
    import os
    import time
    from pathlib import Path

    import pytest

    HERE = Path(__file__).parent


    @pytest.mark.parametrize("n", range(2))
    def test_hold(dockyard_stack, n):
        assert all(s.ready for s in dockyard_stack.ps())
        (HERE / f"running-{os.getpid()}-{n}").touch()
        deadline = time.monotonic() + 120
        while not (HERE / "go").exists():
            assert time.monotonic() < deadline, "never told to go"
            time.sleep(0.05)
"""


def holder_project(make_project: Projects, ports: PortClaims, name: str, berths: int = 1) -> Project:
    """A project whose stack is the small web + cache, with :data:`HOLDING` as its tests."""
    project = make_project(name, ports.take(10 * berths), STACK, max_berths=berths)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider -p no:randomly"\n')
    (project.root / "test_inner.py").write_text(textwrap.dedent(HOLDING))
    return project


def inner_env() -> dict[str, str]:
    """The environment of an inner pytest: neither our DOCKYARD_* settings nor our pytest options."""
    return {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}


def running(project: Project, count: int) -> None:
    """Wait until ``count`` inner tests say they run; on a timeout, with what the holder printed."""
    try:
        wait_for(f"{count} inner tests to run", lambda: len(list(project.root.glob("running-*"))) >= count, timeout=180)
    except AssertionError as exc:
        logs = sorted(project.root.glob("*.log")) + sorted(project.root.glob(".dockyard/shards/*/shard-*.log"))
        shown = "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
        raise AssertionError(f"{exc}\n{shown}") from None


def leases(settings: dockyard.Settings) -> list[LeaseRecord]:
    """The lease records of the pool's berths held now."""
    return [s.record for s in dockyard.BerthPool(settings).statuses() if s.record is not None]


def reaped(
    kind: str, settings: dockyard.Settings, held: Sequence[LeaseRecord], killed_at: float, tally: Tally
) -> float:
    """Assert that nothing of the leases ``held`` is left within the deadline; seconds it took."""
    assert held, "no lease was held when the holder was killed: the test proves nothing"

    def left() -> list[str]:
        return [
            *(r for record in held for r in of_session(record.project, record.lease_id)),
            *(f"process {p}" for p in processes_naming(*(r.lease_id for r in held), *(r.project for r in held))),
            *(b for b in pool_not_free(settings) if int(b.split(":")[0].split()[1]) in berths),
        ]

    berths = {record.index for record in held}  # a neighbour's berth may be held still
    found, _polled = poll(left)
    took = time.time() - killed_at
    wedged = wedged_locks(settings)
    tally.wedged += len(wedged)
    tally.leaks += len(found)
    tally.note("holder", holder=kind, reaped_in=round(took, 2), left=found)
    assert not found, f"{kind}: still there {took:.1f}s after the kill:\n" + "\n".join(found)
    tally.holders[kind] += 1
    tally.reap_seconds.append(took)
    return took


@contextmanager
def started(command: Sequence[str], project: Project, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in ``project``, in a group of its own, output to ``<name>.log``; killed if the block fails."""
    with (project.root / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            cwd=project.root,
            env=inner_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        (project.root / "go").touch()  # whatever still waits may end


def test_the_keeper_of_dockyard_up(make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally) -> None:
    project = holder_project(make_project, chaos_ports, "keeper")
    settings = project.settings
    done = project.cli("up", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    held = leases(settings)
    assert [r.pid for r in held] != [os.getpid()]
    keeper = held[0].pid
    assert is_keeper(held[0]), f"the berth's holder is not the keeper: {held[0].command}"
    os.kill(keeper, 0)  # alive once `up` has returned
    os.kill(keeper, signal.SIGKILL)
    killed_at = time.time()
    reaped("keeper", settings, held, killed_at, chaos_tally)
    status = project.cli("status", "--json")
    assert json.loads(status.stdout)[0]["state"] == "free", status.stdout


def test_pytest_holding_its_own_berth(make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally) -> None:
    # No `dockyard run`: the plugin's dockyard_stack fixture takes the berth in pytest itself.
    project = holder_project(make_project, chaos_ports, "plugin")
    settings = project.settings
    with started([sys.executable, "-m", "pytest", "test_inner.py"], project, "pytest") as proc:
        running(project, 1)
        held = leases(settings)
        assert [r.pid for r in held] == [proc.pid], "the berth is not held by pytest itself"
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        assert proc.wait() == -signal.SIGKILL
        reaped("plugin-pytest", settings, held, killed_at, chaos_tally)


def test_the_parent_of_dockyard_parallel(make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally) -> None:
    # The shards outlive a killed parent only as long as their teardown takes: nobody would
    # gather what they ran, so they stop, and take their stacks down.
    project = holder_project(make_project, chaos_ports, "parallel", berths=2)
    settings = project.settings
    command = [str(Path(sys.executable).parent / "dockyard"), "parallel", "--shards", "2", "--", "test_inner.py"]
    with started(command, project, "parallel") as proc:
        running(project, 2)
        held = leases(settings)
        assert len(held) == 2, held
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        assert proc.wait() == -signal.SIGKILL
        reaped("parallel-parent", settings, held, killed_at, chaos_tally)  # while the tests still wait


def test_one_shard_of_dockyard_parallel(make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally) -> None:
    project = holder_project(make_project, chaos_ports, "shard", berths=2)
    settings = project.settings
    command = [str(Path(sys.executable).parent / "dockyard"), "parallel", "--shards", "2", "--", "test_inner.py"]
    with started(command, project, "parallel") as proc:
        running(project, 2)
        held = leases(settings)
        assert len(held) == 2, held
        victim, survivor = held
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        reaped("parallel-shard", settings, [victim], killed_at, chaos_tally)
        assert alive(survivor.pid), "the other shard did not survive its neighbour's kill"
        (project.root / "go").touch()
        code = proc.wait(timeout=180)
    output = (project.root / "parallel.log").read_text()
    assert code != 0, output
    assert f"failed (exit {-signal.SIGKILL})" in output, output
    left = [r for record in held for r in of_session(record.project, record.lease_id)] + pool_not_free(settings)
    chaos_tally.leaks += len(left)
    assert not left, left


@pytest.mark.usefixtures("orphans_alone")  # its leftovers wait for the next holder: no `cleanup` may take them
def test_a_session_killed_with_its_watchdog_is_reaped_by_the_next_one(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    # An OOM kill or a reboot can take the watchdog too: then the next holder of the berth reaps.
    project = holder_project(make_project, chaos_ports, "watchdog")
    settings = project.settings
    session = Session.start(project, [sys.executable, "-m", "pytest", "test_inner.py"], env=inner_env())
    try:
        running(project, 1)
        [record] = leases(settings)
        watchdogs = [p for p in processes_naming(record.lease_id) if "dockyard.sessions.watchdog" in p]
        assert len(watchdogs) == 1, watchdogs
        os.kill(int(watchdogs[0].split(":", 1)[0]), signal.SIGKILL)
        session.send("killpg")
        code = session.finish()
    except BaseException:
        session.kill()
        raise
    assert code == -signal.SIGKILL
    abandoned = f"dockyard.lease={record.lease_id}"
    assert resources_labelled(abandoned), "nothing was left to reap: the test proves nothing"
    status = next(dockyard.BerthPool(settings).statuses())
    assert status.state is dockyard.State.STALE
    assert status.record == record

    code, output = run_session(project, ["true"], name="next")
    if code != 0:
        chaos_tally.flaky += 1
    assert code == 0, output
    assert f"berth 0: reaped what pid {record.pid} left behind" in output
    left = resources_labelled(abandoned) + pool_not_free(settings)
    left += [f"process {p}" for p in processes_naming(record.lease_id, record.project)]
    chaos_tally.leaks += len(left)
    chaos_tally.note("holder", holder="with-watchdog", left=left)
    assert not left, left
    chaos_tally.holders["with-watchdog"] += 1
