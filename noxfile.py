"""dockyard's own sessions. Each is a docstring and a few calls; the machinery is in the package.

`nox` runs the default list (what CI runs); `nox -s e2e` is the main job on the demo stack.
Docker sessions hold a berth for their whole life through `dockyard run`, so any number of
`nox` runs share one host without colliding.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "unit", "integration", "e2e", "chaos"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_external_run = True


def _install(session: nox.Session, *extras: str) -> None:
    # uv installs without byte-compiling, and where PYTHONDONTWRITEBYTECODE is set (CI images
    # often set it) every `dockyard` and pytest process would then compile docker-py,
    # python-on-whales and pydantic from source again: ~0.3 s each.
    session.install("-e", f".[{','.join(('test', *extras))}]", env={"UV_COMPILE_BYTECODE": "1"})
    # The editable install leaves dockyard's own modules as sources, which such a host would
    # compile anew in every process (~15 ms of the 150 ms start-path budget): compile them once.
    session.run("python", "-m", "compileall", "-q", "src", silent=True)


def _docker_ready(session: nox.Session) -> None:
    """Link Compose v2 if needed and check the engine, or stop with the remedy."""
    session.run("dockyard", "setup")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint + format check), mypy --strict, the package's layers, and the distributions PyPI would get."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)  # the tmp dir outlives the session: last run's files
    session.run("python", "-m", "build", "--outdir", str(dist), silent=True)
    # --strict: warnings too (a README PyPI cannot render, a missing long_description_content_type).
    session.run("twine", "check", "--strict", *(str(p) for p in sorted(dist.iterdir())))


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests: no Docker, seconds."""
    _install(session)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """dockyard against the real Docker engine: its own throwaway stacks, then the infra services."""
    _install(session)
    # The runner-in-a-container test resolves wheels for the image's Python (3.11.2), not this
    # one: uv does that in one go (pip's markers follow the running interpreter, so the test
    # completes them by name, slowly). Installed here, it needs no uv on the host.
    session.install("uv")
    _docker_ready(session)
    # A module's tests on one worker: they share its fixtures (a Podman service, a second engine).
    session.run("pytest", "tests/integration", "-n", "2", "--dist", "loadscope", *session.posargs)
    # The demo's infra services alone (PostgreSQL + Redis), in a berth of their own.
    infra = {"DOCKYARD_COMPOSE_FILES": "compose/infra.yml"}
    session.run("dockyard", "run", "--", "pytest", "tests/infra", *session.posargs, env=infra)


@nox.session
def e2e(session: nox.Session) -> None:
    """The demo journeys: one berth, images built if missing, stack up, tests, teardown.

    `-- --reuse` runs them against the stack `dockyard up` keeps for this checkout instead
    (left up afterwards); `-- --cov` runs auth and backend under coverage.py and reports the
    lines of demo/ the journeys ran (in .dockyard/coverage); further arguments go to pytest.
    """
    _install(session)
    _docker_ready(session)
    ours = [a for a in session.posargs if a in ("--reuse", "--cov")]
    pytest_args = [a for a in session.posargs if a not in ours]
    session.run("dockyard", "run", *ours, "--", "pytest", "tests/e2e", *pytest_args)


@nox.session(name="e2e-parallel")
def e2e_parallel(session: nox.Session) -> None:
    """The demo journeys split into shards by recorded durations, each shard in its own berth.

    `DOCKYARD_SHARDS=N` or `-- --shards N` sets the shard count (default: as many as this host
    runs faster than one, by what earlier runs measured of its CPU; else one); `-- --shard K/N`
    runs one shard of the split (a CI matrix job). Further arguments go to pytest.
    """
    _install(session)
    _docker_ready(session)
    options = ["--shards", os.environ["DOCKYARD_SHARDS"]] if os.environ.get("DOCKYARD_SHARDS") else []
    posargs = list(session.posargs)
    while posargs[:1] in (["--shards"], ["--shard"]):  # dockyard's own options come first
        options, posargs = [*options, *posargs[:2]], posargs[2:]
    session.run("dockyard", "parallel", *options, "--", "tests/e2e", *posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """Sessions killed in every phase, every kind of holder killed, faults, a soak: nothing may leak.

    Short by default (CI, minutes). The long version by hand: `nox -s chaos -- --chaos-long`
    (at least 50 SIGKILLs landed, 8 per phase; 20 soak rounds; an engine lost mid-session).
    `DOCKYARD_CHAOS_SEED=S` replays the kill moments of a run that printed seed S. The
    figures end the output in one line, and are in .dockyard/chaos.json.
    """
    _install(session)
    _docker_ready(session)
    session.run("pytest", "tests/chaos", "-p", "no:randomly", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark: dockyard against bare compose, container recreation, one berth and testcontainers.

    Not in the default list (about 26 minutes). `-- --quick` runs one round; `-- --rounds N`,
    `-- --only ready,fresh`, `-- --only first-run`, `-- --no-targets`: see `python -m bench --help`.
    Results in bench/results/; a missed target or a failed self-check fails the session.
    """
    _install(session, "bench")
    _docker_ready(session)
    session.run("dockyard", "images")
    session.run("python", "-m", "bench", *session.posargs)
