"""Soak: rounds of three `dockyard run -- pytest` sessions at once, from three copies of a project.

The copies live in separate directories but share one lock directory (one pool) and one
project prefix, as three checkouts of one repository on a CI host do. Every inner session
checks that the port it was given answers with *its own* service and is published by *its
own* project. Each session's run report says when it held which berth (acquired to
released); two holds at once sharing a berth, project or port block are a collision, and
the run fails unless some holds did overlap (else the soak proved nothing). Nothing may be
left after a round.
"""

from __future__ import annotations

import json
import secrets
import sys
import textwrap
from pathlib import Path

import pytest

from integration.helpers import TOKEN, Project, Projects, clean_env, compose, service

from .host import PortClaims, of_session, poll, pool_not_free
from .session import Session
from .tally import Tally, Window, count_of, tally_of

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(300)]

COPIES = 3
PREFIX = f"it{TOKEN}-soak"  # shared by the copies: one project name per berth, whichever copy holds it
SERVER = (
    '$$|=1; my $$s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die "listen: $$!";'
    ' print "web: serving as $$ENV{WHO}\\n";'
    ' while (my $$c = $$s->accept) { print $$c "$$ENV{WHO}\\n"; close $$c }'
)
INNER = """
    import socket
    import time
    from pathlib import Path

    import docker
    import pytest

    HERE = Path(__file__).parent
    WHO = (HERE / "who.txt").read_text().strip()


    def ask(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            return conn.makefile().readline().strip()


    def test_my_port_answers_with_my_service(dockyard_stack):
        assert ask(dockyard_stack.port("web", 80)) == WHO


    def test_my_ports_are_published_by_my_project_alone(dockyard_stack):
        client = docker.from_env()
        try:
            for ports in dockyard_stack.berth.ports.values():
                for host in ports.values():
                    assert host in dockyard_stack.berth.port_block
                    owners = client.api.containers(filters={"publish": str(host)})
                    projects = [c["Labels"]["com.docker.compose.project"] for c in owners]
                    assert projects == [dockyard_stack.project], (host, projects)
        finally:
            client.close()


    @pytest.mark.parametrize("n", range(2))
    def test_the_stack_stays_mine(dockyard_stack, n):
        # Asking for a while, so that the sessions of a round overlap: that is the test.
        assert all(s.ready for s in dockyard_stack.ps())
        until = time.monotonic() + 0.75
        while time.monotonic() < until:
            assert ask(dockyard_stack.port("web", 80)) == WHO
            time.sleep(0.05)
"""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per soak round."""
    if "soak_round" in metafunc.fixturenames:
        rounds = range(count_of(metafunc.config, "soak"))
        tally_of(metafunc.config).soak_planned = len(rounds) * COPIES
        metafunc.parametrize("soak_round", rounds, ids=[f"round-{r:03d}" for r in rounds])


@pytest.fixture(scope="module")
def soak_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lock directory every copy shares."""
    return tmp_path_factory.mktemp("soak-pool")


@pytest.fixture(scope="module")
def soak_ports(chaos_ports: PortClaims) -> str:
    """Three blocks of ten for three sessions at once, checked free and claimed for this run."""
    return chaos_ports.take(10 * COPIES)


def copy(make_project: Projects, pool: Path, ports: str, name: str) -> tuple[Project, str]:
    """One copy of the project, whose web service answers with a token of its own."""
    who = f"{name}-{secrets.token_hex(4)}"
    text = compose(
        service(
            "web",
            ports=["80"],
            command=["perl", "-MIO::Socket::INET", "-e", SERVER],
            health=["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"],
            extra=[f"environment: {{WHO: {who}}}"],
        ),
        service("cache", extra=["volumes: [data:/data]"]),
        volumes=["data"],
    )
    project = make_project(name, ports, text, lock_dir=str(pool), max_berths=COPIES, project_prefix=PREFIX)
    if PREFIX not in make_project.prefixes:
        make_project.prefixes.append(PREFIX)  # the leak check looks under the shared prefix too
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider -p no:randomly"\n')
    (project.root / "test_inner.py").write_text(textwrap.dedent(INNER))
    (project.root / "who.txt").write_text(who)
    return project, who


def test_soak_round(
    soak_round: int, make_project: Projects, soak_pool: Path, soak_ports: str, chaos_tally: Tally
) -> None:
    copies = [copy(make_project, soak_pool, soak_ports, f"soak{soak_round}c{k}") for k in range(COPIES)]
    # The inner sessions get neither our DOCKYARD_* settings nor our pytest options.
    env = {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}
    sessions = [
        Session.start(project, [sys.executable, "-m", "pytest", "test_inner.py"], env=env) for project, _ in copies
    ]
    codes = [session.finish() for session in sessions]

    failures, windows = [], []
    for (project, _who), session, code in zip(copies, sessions, codes, strict=True):
        chaos_tally.soak_runs += 1
        if code != 0:
            chaos_tally.flaky += 1
            failures.append(f"--- {project.root.name}: exit {code} ---\n{session.output()}")
            continue
        report = json.loads(session.report.read_text())
        (start, end), block = report["held"], (report["port_block"][0], report["port_block"][1])
        windows.append(Window(project.root.name, report["index"], report["project"], block, start, end))

    # Against each other, and against every earlier round's sessions.
    collisions = [
        f"{a.session} and {b.session} on berth {a.index}/{b.index} ({a.project}, {b.project}) at once"
        for i, a in enumerate(windows)
        for b in [*windows[:i], *chaos_tally.windows]
        if a.collides(b)
    ]
    chaos_tally.windows += windows
    chaos_tally.collisions += len(collisions)

    settings = copies[0][0].settings
    projects = [settings.project_name(i) for i in range(COPIES)]
    found, _took = poll(lambda: [*(r for p in projects for r in of_session(p)), *pool_not_free(settings)], 2.0)
    chaos_tally.leaks += len(found)
    # How many pairs really held berths at once: the soak is only worth it if some did.
    at_once = sum(a.overlaps(b) for i, a in enumerate(windows) for b in windows[:i])
    chaos_tally.overlaps += at_once
    chaos_tally.note("soak", round=soak_round, exits=codes, at_once=at_once, collisions=collisions, left=found)

    assert not failures, "\n".join(failures)
    assert not collisions, "\n".join(collisions)
    assert not found, "left behind:\n" + "\n".join(found)
