"""jobqueue's end-to-end tests: the compose stack in a dockyard berth of its own, then pytest."""

from __future__ import annotations

import nox

nox.options.sessions = ["e2e"]
nox.options.default_venv_backend = "uv|virtualenv"

# In your project this is just "dockyard"; the example installs the checkout it lives in.
DOCKYARD = "../.."


@nox.session
def e2e(session: nox.Session) -> None:
    """Build the images if needed, start the stack in a berth, run the tests, tear it down."""
    session.install(DOCKYARD, "pytest", "pytest-timeout", "httpx", "redis")
    session.run("dockyard", "run", "--", "pytest", *session.posargs)
