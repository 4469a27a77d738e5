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
    from dockyard.errors import (
        ComposeError,
        ConfigError,
        DockerUnavailable,
        DockyardError,
        ExitCode,
        LockDirError,
        NoFreeBerth,
        StackUnhealthy,
    )
    from dockyard.pool.berth import Berth, BerthPool, BerthStatus, State
    from dockyard.pool.lease import LeaseRecord
    from dockyard.portblock import PortBlock
    from dockyard.sessions.api import acquire_berth, running_stack
    from dockyard.settings import Settings, load_settings
    from dockyard.stack.fresh import FreshState
    from dockyard.stack.services import ServiceState
    from dockyard.stack.stack import Stack
    from dockyard.ui.progress import Reporter

_WHERE = {
    "acquire_berth": "sessions.api",
    "running_stack": "sessions.api",
    "Berth": "pool.berth",
    "BerthPool": "pool.berth",
    "BerthStatus": "pool.berth",
    "State": "pool.berth",
    "ComposeError": "errors",
    "ConfigError": "errors",
    "DockerUnavailable": "errors",
    "DockyardError": "errors",
    "ExitCode": "errors",
    "LockDirError": "errors",
    "NoFreeBerth": "errors",
    "StackUnhealthy": "errors",
    "FreshState": "stack.fresh",
    "LeaseRecord": "pool.lease",
    "PortBlock": "portblock",
    "Reporter": "ui.progress",
    "Settings": "settings",
    "load_settings": "settings",
    "ServiceState": "stack.services",
    "Stack": "stack.stack",
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
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
