"""What users rely on stays put: the package's names, entry points, config keys and labels.

The lists here are the contract, written out by hand: moving a module must not change them,
and renaming one of them is a breaking change that has to show up as a failing test.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

import dockyard
from dockyard.engine.labels import MANAGED, labels_for
from dockyard.settings import KEYS

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = {
    "Berth",
    "BerthPool",
    "BerthStatus",
    "ComposeError",
    "ConfigError",
    "DockerUnavailable",
    "DockyardError",
    "ExitCode",
    "FreshState",
    "LeaseRecord",
    "LockDirError",
    "NoFreeBerth",
    "PortBlock",
    "Reporter",
    "ServiceState",
    "Settings",
    "Stack",
    "StackUnhealthy",
    "State",
    "acquire_berth",
    "load_settings",
    "running_stack",
}

KEY_NAMES = {
    "compose_files",
    "profiles",
    "project_prefix",
    "port_range",
    "block_size",
    "max_berths",
    "lock_dir",
    "acquire_timeout",
    "health_timeout",
    "settle",
    "stop_timeout",
    "artifacts_dir",
    "keep_on_failure",
    "skip_missing_docker",
    "base_image_arg",
    "runner",
    "engines",
    "reuse",
    "mask",
    "services",
    "coverage",
    "coverage_dir",
}

LABELS = {
    "dockyard.managed",
    "dockyard.berth",
    "dockyard.project",
    "dockyard.lock",
    "dockyard.lease",
    "dockyard.created",
    "dockyard.host",
    "dockyard.pool",
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_imports_from_the_package(name: str) -> None:
    assert name in dockyard.__all__
    assert getattr(dockyard, name) is not None


def test_the_package_exports_no_name_beyond_the_contract() -> None:
    assert set(dockyard.__all__) == PUBLIC


def test_the_console_script_and_the_pytest_plugin_are_where_the_metadata_says() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"dockyard": "dockyard.cli.program:main"}
    assert project["entry-points"]["pytest11"] == {"dockyard": "dockyard.pytest_plugin"}
    module, _, func = project["scripts"]["dockyard"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    plugin = importlib.import_module(project["entry-points"]["pytest11"]["dockyard"])
    assert callable(plugin.pytest_addoption)


def test_every_config_key_keeps_its_name_and_its_variable() -> None:
    assert {k.name for k in KEYS} == KEY_NAMES
    assert {k.env for k in KEYS} == {f"DOCKYARD_{name.upper()}" for name in KEY_NAMES}


def test_every_resource_label_keeps_its_name() -> None:
    labels = labels_for(3, "demo-20300", Path("/locks/berth-3.lock"), "lease", 1.0, pool="pool")
    assert set(labels) == LABELS
    assert labels[MANAGED] == "true"
