"""dockyard's own sessions. Each is a docstring and a few calls; the machinery is in the package.

`nox` runs the default list (what CI runs); `nox -s e2e` is the main job on the demo stack.
Docker sessions hold a berth for their whole life through `dockyard run`, so any number of
`nox` runs share one host without colliding.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "unit", "integration", "e2e"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_external_run = True


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(('test', *extras))}]")


def _docker_ready(session: nox.Session) -> None:
    """Link Compose v2 if needed and check the engine, or stop with the remedy."""
    session.run("dockyard", "setup")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint + format check) and mypy --strict over src and tests."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests: no Docker, seconds."""
    _install(session)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """dockyard against the real Docker engine: its own throwaway stacks, then the infra services."""
    _install(session)
    _docker_ready(session)
    session.run("pytest", "tests/integration", "-n", "2", *session.posargs)
    # The demo's infra services alone (PostgreSQL + Redis), in a berth of their own.
    infra = {"DOCKYARD_COMPOSE_FILES": "compose/infra.yml"}
    session.run("dockyard", "run", "--", "pytest", "tests/infra", *session.posargs, env=infra)


@nox.session
def e2e(session: nox.Session) -> None:
    """The demo journeys: one berth, images built if missing, stack up, tests, teardown."""
    _install(session)
    _docker_ready(session)
    session.run("dockyard", "run", "--", "pytest", "tests/e2e", *session.posargs)


@nox.session(name="e2e-parallel")
def e2e_parallel(session: nox.Session) -> None:
    """The demo journeys on pytest-xdist workers, each worker in its own berth."""
    _install(session)
    _docker_ready(session)
    workers = os.environ.get("DOCKYARD_SHARDS", "3")
    session.run("dockyard", "images")
    session.run("pytest", "tests/e2e", "-n", workers, *session.posargs)
