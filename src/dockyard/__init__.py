"""dockyard: every test session gets its own isolated Docker Compose stack on a shared host.

A session acquires a *berth* (a file-locked slot owning a block of host ports and a compose
project name), runs the user's compose stack in it unchanged, and leaves nothing behind.

Names are imported on first use (PEP 562): ``import dockyard`` stays cheap for the pytest
plugin and for test runs that never touch Docker, since the Docker SDK and python-on-whales
take most of a second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._api import acquire_berth, running_stack
    from ._berth import Berth, BerthPool, BerthStatus, State
    from ._errors import (
        ComposeError,
        ConfigError,
        DockerUnavailable,
        DockyardError,
        ExitCode,
        LockDirError,
        NoFreeBerth,
        StackUnhealthy,
    )
    from ._fresh import FreshState
    from ._lease import LeaseRecord
    from ._progress import Reporter
    from ._settings import Settings, load_settings
    from ._stack import ServiceState, Stack

_WHERE = {
    "acquire_berth": "_api",
    "running_stack": "_api",
    "Berth": "_berth",
    "BerthPool": "_berth",
    "BerthStatus": "_berth",
    "State": "_berth",
    "ComposeError": "_errors",
    "ConfigError": "_errors",
    "DockerUnavailable": "_errors",
    "DockyardError": "_errors",
    "ExitCode": "_errors",
    "LockDirError": "_errors",
    "NoFreeBerth": "_errors",
    "StackUnhealthy": "_errors",
    "FreshState": "_fresh",
    "LeaseRecord": "_lease",
    "Reporter": "_progress",
    "Settings": "_settings",
    "load_settings": "_settings",
    "ServiceState": "_stack",
    "Stack": "_stack",
}
__all__ = [
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
    "Reporter",
    "ServiceState",
    "Settings",
    "Stack",
    "StackUnhealthy",
    "State",
    "acquire_berth",
    "load_settings",
    "running_stack",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
