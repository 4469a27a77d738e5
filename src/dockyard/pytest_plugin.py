"""The pytest plugin: a stack per session (or per xdist worker), addresses, logs of failures.

Fixtures:

``dockyard_settings``
    The validated ``[tool.dockyard]`` of the rootdir.
``dockyard_stack``
    Session-scoped running :class:`~dockyard.Stack`. It is the stack handed down by
    ``dockyard run`` (how nox sessions run pytest) when there is one; else the stack
    ``dockyard up`` keeps for this project and user (warm reuse, ``reuse`` setting; never torn
    down by the tests); otherwise, and in every pytest-xdist worker, a berth of its own is
    acquired and the stack started in it.
``dockyard_service_url`` (alias ``service_url``)
    ``dockyard_service_url("backend", 8000)`` -> ``"http://127.0.0.1:<berth port>"`` (from a
    runner container attached to the stack's networks: ``"http://<container name>:8000"``).
``dockyard_fresh``
    Fresh state for each test: PostgreSQL restored, Redis flushed.

Every fixture is named ``dockyard_*``; ``service_url`` stays as an alias, and a fixture of
that name in the user's own conftest.py takes precedence over it, as over any plugin's.
Tests whose fixtures reach ``dockyard_stack`` carry the ``dockyard`` marker, so
``-m "not dockyard"`` runs the rest without Docker.

The report header names the berth, project, port block and engine of a stack handed down
by ``dockyard run``; without one the plugin prints nothing until a test asks for the stack.

With ``--dockyard-keep-on-failure`` (or ``keep_on_failure``), a failed test leaves the
session's stack up, its database copied, the berth held by a keeper; the summary says how to
reach and release them.

When a test that uses the stack fails, the logs every service wrote while it ran are
attached to its report and written under the artifacts directory, named after the test.

Heavy imports (Docker SDK, python-on-whales) happen in the fixtures, so test runs that do
not use Docker pay nothing for the plugin.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dockyard.settings import Settings
    from dockyard.stack.fresh import FreshState
    from dockyard.stack.stack import ServiceState, Stack

_STARTED = pytest.StashKey[float]()
_STACK = pytest.StashKey["Stack"]()
_FRESH = pytest.StashKey["FreshState"]()
_FAILED = pytest.StashKey[dict[str, str]]()  # failed test -> its database's copy ("" without one)
_KEPT = pytest.StashKey[list[str]]()  # the summary lines of what was kept


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register dockyard's command-line options."""
    group = parser.getgroup("dockyard", "isolated Docker Compose stacks")
    group.addoption(
        "--dockyard-skip-missing",
        action="store_true",
        default=False,
        help="Skip tests that need Docker when it is unavailable (default: fail with the reason).",
    )
    group.addoption(
        "--dockyard-share",
        action="store_true",
        default=False,
        help="xdist workers share the stack handed down by `dockyard run` (each worker gets its own "
        "database and Redis db from `dockyard_fresh`) instead of a berth each.",
    )
    group.addoption(
        "--dockyard-no-reuse",
        action="store_true",
        default=False,
        help="Start a stack of this session's own even when `dockyard up` keeps one for this project.",
    )
    group.addoption(
        "--dockyard-keep-on-failure",
        action="store_true",
        default=False,
        help="When a test fails, keep the stack, its database and the berth for debugging "
        "(`dockyard down --berth N` releases them). Also the keep_on_failure setting.",
    )
    group.addoption(
        "--dockyard-root",
        default=None,
        help="Directory whose pyproject.toml configures the stack (default: pytest's rootdir).",
    )


@pytest.fixture(scope="session")
def dockyard_settings(pytestconfig: pytest.Config) -> Settings:
    """The validated ``[tool.dockyard]`` settings."""
    from dockyard.settings import load_settings  # noqa: PLC0415 - see module docstring

    return load_settings(pytestconfig.getoption("dockyard_root") or pytestconfig.rootpath)


@pytest.fixture(scope="session")
def dockyard_stack(dockyard_settings: Settings, pytestconfig: pytest.Config) -> Iterator[Stack]:
    """The running stack of this test session (or xdist worker)."""
    from dockyard.errors import DockerUnavailable  # noqa: PLC0415
    from dockyard.sessions import keep as keeping  # noqa: PLC0415
    from dockyard.sessions.reuse import session_stack  # noqa: PLC0415

    skip_missing = pytestconfig.getoption("dockyard_skip_missing") or dockyard_settings.skip_missing_docker
    keep = _keep_on_failure(pytestconfig, dockyard_settings)
    try:
        # An xdist worker takes its own berth, so workers share no state, unless sharing is
        # asked for (then `dockyard_fresh` gives each worker its own database instead).
        share = pytestconfig.getoption("dockyard_share") or not hasattr(pytestconfig, "workerinput")
        reuse = dockyard_settings.reuse and not pytestconfig.getoption("dockyard_no_reuse")
        say = _say(pytestconfig)
        with session_stack(dockyard_settings, reuse=reuse, share=share, keep=keep, progress=say) as stack:
            pytestconfig.stash[_STACK] = stack
            yield stack
            failed = pytestconfig.stash.get(_FAILED, {})
            if keep and failed:
                databases = {test: copy for test, copy in failed.items() if copy}
                kept = keeping.mark_kept(stack.berth, list(failed), databases) if keeping.session_owned(stack) else None
                pytestconfig.stash.setdefault(_KEPT, []).extend(keeping.describe(stack, kept, databases))
    except DockerUnavailable as exc:
        if skip_missing:
            pytest.skip(f"Docker unavailable: {exc.message}")
        raise


def _say(config: pytest.Config) -> Callable[[str], None]:
    """dockyard's lines on the terminal, not into the capture of the test that set the stack up."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # an xdist worker: its stderr reaches the controller's terminal
        from dockyard.ui.console import say as to_stderr  # noqa: PLC0415 - see module docstring

        return to_stderr
    capture = config.pluginmanager.get_plugin("capturemanager")

    def to_terminal(message: str) -> None:
        # As pytest's live logging does: the fixture runs inside the test's output capture.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(f"dockyard: {message}")

    return to_terminal


def _keep_on_failure(config: pytest.Config, settings: Settings) -> bool:
    return bool(config.getoption("dockyard_keep_on_failure") or settings.keep_on_failure)


@pytest.fixture
def dockyard_service_url(dockyard_stack: Stack) -> Callable[..., str]:
    """``dockyard_service_url(service, container_port, scheme="http")`` of the running stack."""
    return dockyard_stack.url


@pytest.fixture
def service_url(dockyard_service_url: Callable[..., str]) -> Callable[..., str]:
    """Alias of ``dockyard_service_url`` (a ``service_url`` fixture of your own takes precedence)."""
    return dockyard_service_url


@pytest.fixture(scope="session")
def _dockyard_fresh_session(dockyard_stack: Stack, pytestconfig: pytest.Config) -> Iterator[FreshState]:
    from dockyard.sessions.reuse import fresh_state  # noqa: PLC0415

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = pytestconfig.getoption("dockyard_share") and worker
    with fresh_state(dockyard_stack, worker=worker if shared else None) as fresh:
        pytestconfig.stash[_FRESH] = fresh
        yield fresh


@pytest.fixture
def dockyard_fresh(_dockyard_fresh_session: FreshState) -> FreshState:
    """Fresh state for this test: PostgreSQL restored from its post-start template, Redis flushed.

    ``.dsn`` and ``.redis_url`` point at this test's database (per worker when sharing a stack).
    """
    _dockyard_fresh_session.reset()
    return _dockyard_fresh_session


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Report what per-test fresh state cost, and what was kept after a failure."""
    fresh = config.stash.get(_FRESH, None)
    if fresh is not None:
        terminalreporter.write_line(f"dockyard: {fresh.summary()}")
    for line in config.stash.get(_KEPT, []):
        terminalreporter.write_line(f"dockyard: {line}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember when the test started, to collect only its logs if it fails."""
    item.stash[_STARTED] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the services' logs since the test started to a failing test's report."""
    report = yield
    if report.failed and call.when == "call":
        _note_failure(item)
    stack = item.config.stash.get(_STACK, None)
    fixtures = getattr(item, "fixturenames", ())
    if report.failed and call.when == "call" and stack is not None and "dockyard_stack" in _closure(item, fixtures):
        since = item.stash.get(_STARTED, time.time()) - 1
        try:
            # A service that died during the test is the likeliest cause: name it before the logs.
            text = "".join(f"dockyard: service {s.service!r} {_why_down(s)}\n" for s in stack.ps() if not s.ready)
            text += "".join(stack.logs(since=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since)) + "Z"))
        except Exception as exc:  # noqa: BLE001 - a report hook must never mask the test's own failure
            text = f"(could not collect logs: {exc})"
        report.sections.append(("dockyard: service logs since the test started", text))
        from dockyard.dirs import private_dir  # noqa: PLC0415 - see module docstring

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
        # Private like every artifact: service logs can hold what the masking does not know.
        directory = private_dir(stack.settings.artifacts_dir / "tests")
        fd = os.open(directory / f"{safe}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    return report


def _note_failure(item: pytest.Item) -> None:
    """With keep-on-failure, remember the failed test and copy its database before the next test resets it."""
    stack = item.config.stash.get(_STACK, None)
    if stack is None or not _keep_on_failure(item.config, stack.settings):
        return
    failed = item.config.stash.setdefault(_FAILED, {})
    fresh = item.config.stash.get(_FRESH, None)
    copy = ""
    if fresh is not None and "dockyard_fresh" in _closure(item, getattr(item, "fixturenames", ())):
        name = f"{fresh.database}_failed_{os.getpid()}_{len(failed) + 1}"[:63]
        try:
            dsn = fresh.preserve(name)
        except Exception as exc:  # noqa: BLE001 - a report hook must never mask the test's own failure
            dsn = None
            item.config.stash.setdefault(_KEPT, []).append(f"could not copy the database of {item.nodeid}: {exc}")
        copy = stack.redact(dsn) if dsn else ""
    failed[item.nodeid] = copy


def _why_down(state: ServiceState) -> str:
    if state.state == "exited":
        return f"exited with code {state.exit_code} during the test"
    return "is unhealthy" if state.health == "unhealthy" else f"is {state.state} ({state.health or 'no health check'})"


def _closure(item: pytest.Item, names: Iterator[str] | tuple[str, ...] | list[str]) -> list[str]:
    closure = getattr(item, "_fixtureinfo", None)
    return list(closure.names_closure) if closure is not None else list(names)


# -- pytest conventions: markers, the report header ---------------------------------------------

MARKER = "dockyard"
# dockyard.sessions.api.BERTH_ENV, spelled out: importing that module takes a second, and a
# run with no stack handed down must not pay it for its header.
BERTH_ENV = "DOCKYARD_BERTH"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker the plugin puts on tests that use the stack (``--strict-markers`` knows it)."""
    config.addinivalue_line(
        "markers", f"{MARKER}: the test uses dockyard's stack (set by the plugin on every test reaching dockyard_stack)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures reach ``dockyard_stack``: ``-m "not dockyard"`` deselects them."""
    for item in items:
        if "dockyard_stack" in _closure(item, getattr(item, "fixturenames", ())):
            item.add_marker(MARKER)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The berth handed down by ``dockyard run``: index, project, port block, engine; nothing without one."""
    raw = os.environ.get(BERTH_ENV)
    if not raw:
        return []
    try:
        data = json.loads(raw)
        first, last = data["port_block"]
        line = f"dockyard: berth {data['index']} ({data['project']}), ports {first}-{last}"
        endpoint = data["record"].get("engine", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return [f"dockyard: {BERTH_ENV} is set but is not a berth `dockyard run` handed down"]
    from dockyard.engine.endpoints import engine_for  # noqa: PLC0415 - reads no more than the docker CLI's config
    from dockyard.errors import DockerUnavailable  # noqa: PLC0415

    try:
        line += f", engine {engine_for(endpoint)}"
    except DockerUnavailable as exc:
        line += f", engine unknown ({exc.message})"
    lines = [line]
    if config.getoption("numprocesses", None) and not config.getoption("dockyard_share"):
        lines.append("dockyard: each xdist worker takes a berth of its own (--dockyard-share: all use this one)")
    return lines
