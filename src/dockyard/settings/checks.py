"""The checks a key's value must pass, each returning what is allowed when it fails, else None."""

from __future__ import annotations

import re

from dockyard.settings.readers import ServiceTables

_PROJECT_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# What a wait strategy looks like; dockyard.stack.waits parses it (this only checks the shape).
_WAIT = re.compile(r"^(http://:\d{1,5}(/\S*)?|tcp://:\d{1,5}|log:.+|exit:0)$")
# Where a measured service's sources are: the host directory (relative to the project root, or
# absolute; default the root) and, after the colon, the absolute directory inside its container.
_COVERAGE = re.compile(r"^([^:]+:)?/\S*$")
SERVICE_KEYS = ("wait", "settle", "coverage")  # what a [tool.dockyard.services.NAME] table may set


def positive(value: float) -> str | None:
    """A number above 0."""
    return None if value > 0 else "must be greater than 0"


def non_negative(value: float) -> str | None:
    """A number of 0 or more."""
    return None if value >= 0 else "must be 0 or more"


def runner_place(value: str) -> str | None:
    """Where tests run: ``auto``, ``host`` or ``container``."""
    return None if value in ("auto", "host", "container") else "must be auto, host or container"


def project_prefix(value: str) -> str | None:
    """A prefix of compose project names that Compose accepts."""
    if _PROJECT_PREFIX.match(value):
        return None
    return "must be 1-40 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"


def settle_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a settle time (None: a number of seconds above 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return f"settle must be a number of seconds greater than 0, not {value!r}"
    return None


def service_tables(value: ServiceTables) -> str | None:
    """Per-service tables setting only :data:`SERVICE_KEYS`, each value of the right shape."""
    for name, table in value:
        keys = {key for key, _ in table}
        if keys - set(SERVICE_KEYS):
            return (
                'must be tables of `wait = "..."`, `settle = SECONDS` and `coverage = "..."` per service; '
                f"[{name}] has {sorted(keys)!r}"
            )
        cov = dict(table).get("coverage")
        if cov is not None and (not isinstance(cov, str) or not _COVERAGE.match(cov)):
            return f'[{name}] coverage must be "HOST_DIR:/CONTAINER_DIR" or "/CONTAINER_DIR", not {cov!r}'
        wait = dict(table).get("wait")
        if wait is not None and (not isinstance(wait, str) or not _WAIT.match(wait)):
            return (
                f'[{name}] wait must be one of "http://:PORT/PATH", "tcp://:PORT", "log:TEXT" or "exit:0", not {wait!r}'
            )
        if "settle" in dict(table) and (problem := settle_problem(dict(table)["settle"])) is not None:
            return f"[{name}] {problem}"
    return None


def engine_endpoints(value: list[str]) -> str | None:
    """Docker engine endpoints, each with a scheme the Docker CLI knows."""
    bad = [v for v in value if not re.match(r"^(unix|tcp|ssh|npipe|fd)://.", v)]
    return (
        f"must be engine endpoints like unix:///var/run/docker.sock or ssh://user@host, not {bad[0]!r}" if bad else None
    )
