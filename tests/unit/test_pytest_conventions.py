"""The plugin's pytest face, in inner sessions (pytester), no Docker: header, options, markers, fixture names.

The stack is never started here: a handed-down berth is only described (the header reads
``DOCKYARD_BERTH``), and the tests that need the stack's fixtures override ``dockyard_stack``
with a fake in the inner conftest.
"""

from __future__ import annotations

import json
import os

import pytest

from dockyard import pytest_plugin
from dockyard.sessions.api import BERTH_ENV

pytest_plugins = ["pytester"]

HANDED = {
    "index": 3,
    "project": "demo-3",
    "port_block": [20300, 20399],
    "ports": {"backend": {"8000": 20300}},
    "addresses": {"backend": {"8000": "127.0.0.1:20300"}},
    "lock_path": "/nowhere/3.lock",
    "record": {"index": 3, "project": "demo-3", "port_block": [20300, 20399], "engine": ""},
}

PLAIN_TESTS = """
    def test_one():
        pass
"""


@pytest.fixture(autouse=True)
def inner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No berth, worker or options of an outer session reach the inner ones; a fixed engine."""
    for key in list(os.environ):
        if key.startswith(("DOCKYARD_", "PYTEST_XDIST_")) or key in ("PYTEST_ADDOPTS", "DOCKER_CONTEXT"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/test-engine.sock")


def test_the_env_name_is_the_one_dockyard_run_hands_down() -> None:
    assert pytest_plugin.BERTH_ENV == BERTH_ENV


def test_no_header_line_without_a_berth(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLAIN_TESTS)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    assert not [line for line in result.outlines if line.startswith("dockyard")]


def test_the_header_names_the_handed_down_berth(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BERTH_ENV, json.dumps(HANDED))
    pytester.makepyfile(PLAIN_TESTS)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    header = [line for line in result.outlines if line.startswith("dockyard")]
    assert header == ["dockyard: berth 3 (demo-3), ports 20300-20399, engine unix:///run/test-engine.sock"]
    # In the header, before the tests: where `pytest` prints rootdir and plugins.
    assert result.outlines.index(header[0]) < next(i for i, line in enumerate(result.outlines) if "collected" in line)


def test_the_header_says_xdist_workers_take_their_own(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BERTH_ENV, json.dumps(HANDED))
    pytester.makepyfile(PLAIN_TESTS)
    result = pytester.runpytest_inprocess("-p", "xdist", "-n", "1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["dockyard: berth 3 *", "dockyard: each xdist worker takes a berth of its own *"])
    shared = pytester.runpytest_inprocess("-p", "xdist", "-n", "1", "--dockyard-share")
    assert not [line for line in shared.outlines if "each xdist worker" in line]


def test_a_malformed_berth_is_named_not_a_traceback(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BERTH_ENV, '{"index": 3}')
    pytester.makepyfile(PLAIN_TESTS)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"dockyard: {BERTH_ENV} is set but is not a berth `dockyard run` handed down"])


def test_the_options_are_a_group_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["isolated Docker Compose stacks:", "*--dockyard-skip-missing*", "*--dockyard-share*", "*--dockyard-root*"]
    )


FAKE_STACK = """
    import pytest


    class FakeStack:
        def url(self, service, port, scheme="http"):
            return f"{scheme}://fake-{service}:{port}"


    @pytest.fixture(scope="session")
    def dockyard_stack():
        return FakeStack()
"""

USES_THE_STACK = """
    import pytest


    def test_by_the_new_name(dockyard_service_url):
        assert dockyard_service_url("backend", 8000) == "http://fake-backend:8000"


    def test_by_the_old_name(service_url):
        assert service_url("backend", 8000) == "http://fake-backend:8000"


    def test_without_the_stack():
        pass


    def test_marked(request):
        assert request.node.get_closest_marker("dockyard") is None
"""


def test_the_marker_is_registered_and_set_on_tests_using_the_stack(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest_inprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.dockyard: the test uses dockyard's stack*"])

    pytester.makeconftest(FAKE_STACK)
    pytester.makepyfile(USES_THE_STACK)
    every = pytester.runpytest_inprocess("--strict-markers")
    every.assert_outcomes(passed=4)  # both names reach the (fake) stack
    without = pytester.runpytest_inprocess("--strict-markers", "-m", "not dockyard", "-v")
    without.assert_outcomes(passed=2, deselected=2)
    without.stdout.fnmatch_lines(["*test_without_the_stack PASSED*"])
    only = pytester.runpytest_inprocess("--strict-markers", "-m", "dockyard", "-v")
    only.assert_outcomes(passed=2, deselected=2)
    only.stdout.fnmatch_lines(["*test_by_the_new_name PASSED*", "*test_by_the_old_name PASSED*"])


def test_a_users_own_service_url_wins_over_the_alias(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        FAKE_STACK
        + """

    @pytest.fixture
    def service_url():
        return "mine"
    """
    )
    pytester.makepyfile(
        """
        def test_names(service_url, dockyard_service_url):
            assert service_url == "mine"
            assert dockyard_service_url("web", 80) == "http://fake-web:80"
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
