"""A stack in a berth: up to healthy and down to nothing, alone and side by side."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

import dockyard
from dockyard.errors import TeardownIncomplete

from .helpers import IMAGE, NOTHING, Project, Projects, compose, docker, leftovers, project_resources, service

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

TWO_SERVICES = compose(
    service("web", ports=["80"]),
    service("db", ports=["5432"], extra=["volumes: [data:/var/lib/data]"]),
    volumes=["data"],
)
HARD_CODED = compose(service("web", ports=["8080:80"]))


def labels(kind: str, item: dict[str, Any]) -> dict[str, str]:
    """The labels of an inspected container, network or volume."""
    found: dict[str, str] = (item["Config"]["Labels"] if kind == "container" else item["Labels"]) or {}
    return found


def bindings(container: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """``NetworkSettings.Ports`` of an inspected container: "80/tcp" -> [{HostIp, HostPort}]."""
    ports: dict[str, list[dict[str, str]]] = container["NetworkSettings"]["Ports"] or {}
    return ports


def published(stack: dockyard.Stack) -> dict[tuple[str, str], list[dict[str, str]]]:
    """(service, "port/tcp") -> host bindings of every container of ``stack``."""
    return {
        (c["Config"]["Labels"]["com.docker.compose.service"], port): bound or []
        for c in project_resources(stack.project)["container"]
        for port, bound in bindings(c).items()
    }


@contextmanager
def two_stacks(project: Project) -> Iterator[list[dockyard.Stack]]:
    """Two berths of ``project`` held at once, each with its stack up and healthy."""
    settings = project.settings
    with ExitStack() as held:
        stacks = []
        for _ in range(2):
            berth = held.enter_context(dockyard.acquire_berth(settings, with_ports=False))
            stack = dockyard.Stack(settings, berth)
            stack.up()
            held.callback(stack.down)  # runs before the berth's release: exits unwind in reverse
            stacks.append(stack)
        yield stacks


def test_up_down_round_trip(make_project: Projects) -> None:
    project = make_project("roundtrip", "22000-22099", TWO_SERVICES)
    settings = project.settings
    with dockyard.acquire_berth(settings, with_ports=False) as berth:
        stack = dockyard.Stack(settings, berth)
        stack.up()
        try:
            assert sorted(s.service for s in stack.ps() if s.ready) == ["db", "web"]
            resources = project_resources(stack.project)
            assert len(resources["container"]) == 2
            assert len(resources["network"]) == 1
            assert len(resources["volume"]) == 1
            for kind, items in resources.items():
                for item in items:
                    assert labels(kind, item).get("dockyard.managed") == "true", (kind, labels(kind, item))
                    assert labels(kind, item).get("dockyard.berth") == str(berth.index), (kind, labels(kind, item))

            expected = {("web", "80/tcp"): stack.port("web", 80), ("db", "5432/tcp"): stack.port("db", 5432)}
            assert set(expected.values()) <= set(berth.port_block)
            assert len(set(expected.values())) == 2
            assert published(stack) == {
                key: [{"HostIp": "127.0.0.1", "HostPort": str(host)}] for key, host in expected.items()
            }
        finally:
            started = time.monotonic()
            stack.down()
            took = time.monotonic() - started
        assert project_resources(stack.project) == NOTHING
    assert leftovers(project.prefix) == []
    assert took < 3.0, f"down took {took:.1f}s"


def test_ready_without_waiting_for_the_engines_health_interval(make_project: Projects) -> None:
    """dockyard runs each service's own health check itself: a 60 s interval does not hold `up` up."""
    slow = compose(service("web", health=("CMD-SHELL", "test -d /proc/1"), interval="60s"))
    project = make_project("probed", "23500-23599", slow, health_timeout=30)
    with dockyard.acquire_berth(project.settings, with_ports=False) as berth:
        stack = dockyard.Stack(project.settings, berth)
        stack.up()  # would time out after 30 s if only the engine's first check (at 60 s) counted
        try:
            (engine_view,) = project_resources(stack.project)["container"]
            assert engine_view["State"]["Health"]["Status"] == "starting"  # the engine has not checked yet
            (state,) = stack.ps()
            assert (state.service, state.health, state.ready) == ("web", "healthy", True)
        finally:
            stack.down()


CHILD_PS = (
    "import json, dockyard; from dockyard.sessions.api import handed_down;"
    " print(json.dumps([(s.service, s.health, s.ready) for s in handed_down(dockyard.load_settings()).ps()]))"
)


def test_a_child_of_dockyard_run_sees_the_readiness_dockyard_saw(make_project: Projects) -> None:
    """The command `dockyard run` starts agrees with it: ready, while the engine still says "starting"."""
    slow = compose(service("web", health=("CMD-SHELL", "test -d /proc/1"), interval="60s"))
    project = make_project("probedrun", "27300-27399", slow, health_timeout=30)
    done = project.cli("run", "--", sys.executable, "-c", CHILD_PS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [["web", "healthy", True]]
    assert leftovers(project.prefix) == []


def test_two_berths_side_by_side(make_project: Projects) -> None:
    project = make_project("twoberths", "22100-22199", TWO_SERVICES)
    with two_stacks(project) as (one, two):
        assert one.project != two.project
        assert one.berth.index != two.berth.index
        seen: list[int] = []
        for stack in (one, two):
            assert sorted(s.service for s in stack.ps() if s.ready) == ["db", "web"]
            for (svc, port), bound in published(stack).items():
                assert [b["HostIp"] for b in bound] == ["127.0.0.1"], (stack.project, svc, port, bound)
                host = int(bound[0]["HostPort"])
                assert host in stack.berth.port_block, (stack.project, svc, port, host)
                seen.append(host)
        assert len(seen) == 4
        assert len(set(seen)) == 4, f"host ports shared between berths: {seen}"


def test_hard_coded_host_port_runs_unchanged_in_two_berths(make_project: Projects) -> None:
    project = make_project("hardcoded", "22200-22299", HARD_CODED)
    before = project.compose.read_bytes()
    with two_stacks(project) as stacks:
        hosts = []
        for stack in stacks:
            bound = published(stack)[("web", "80/tcp")]
            assert [b["HostIp"] for b in bound] == ["127.0.0.1"]
            host = int(bound[0]["HostPort"])
            assert host != 8080
            assert host == stack.port("web", 80)
            assert host in stack.berth.port_block
            hosts.append(host)
        assert hosts[0] != hosts[1]
    assert project.compose.read_bytes() == before
    assert sorted(p.name for p in project.root.iterdir()) == ["compose.yaml", "locks", "pyproject.toml"]


# Each ignores SIGTERM (tini passes it to a shell that traps it): it stops only when killed.
STUBBORN = ("sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")


def test_down_stops_every_service_at_once_each_killed_after_the_stop_timeout(make_project: Projects) -> None:
    """Three levels of `depends_on` that ignore SIGTERM go in one stop_timeout, not one per level."""
    chain = compose(
        service("a", command=STUBBORN, extra=["depends_on: [b]"]),
        service("b", command=STUBBORN, extra=["depends_on: [c]"]),
        service("c", command=STUBBORN),
    )
    project = make_project("stubborn", "27400-27499", chain, stop_timeout=2)
    with dockyard.acquire_berth(project.settings, with_ports=False) as berth:
        stack = dockyard.Stack(project.settings, berth)
        stack.up()
        started = time.monotonic()
        stack.down()
        took = time.monotonic() - started
        assert project_resources(stack.project) == NOTHING
    assert 2.0 <= took < 4.0, f"down took {took:.1f}s for three levels of 2 s stops"


def test_a_teardown_that_leaves_something_names_it_and_keeps_the_record(make_project: Projects) -> None:
    """A named volume a stranger's container still uses cannot go: down says so, the berth stays recorded."""
    project = make_project("pinned", "27500-27599", TWO_SERVICES)
    with dockyard.acquire_berth(project.settings, with_ports=False) as berth:
        stack = dockyard.Stack(project.settings, berth)
        stack.up()
        volume = f"{stack.project}_data"
        stranger = f"{stack.project}-stranger"  # no dockyard label, no compose project: not the stack's
        docker("run", "-d", "--name", stranger, "-v", f"{volume}:/data", IMAGE, "sleep", "infinity")
        try:
            with pytest.raises(TeardownIncomplete, match=rf"left volume {volume}") as failed:
                stack.down()
            assert "dockyard cleanup" in str(failed.value)
            assert berth.keep_record  # for the next holder, or `cleanup`, to reap
            assert [c["Name"] for c in project_resources(stack.project)["container"]] == []
            assert docker("ps", "-q", "--filter", f"name={stranger}").strip()  # a stranger is never touched
        finally:
            docker("rm", "-f", stranger, check=False)
            docker("volume", "rm", "-f", volume, check=False)
