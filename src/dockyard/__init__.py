"""dockyard: every test session gets its own isolated Docker Compose stack on a shared host.

A session acquires a *berth* (a file-locked slot owning a block of host ports and a compose
project name), runs the user's compose stack in it unchanged, and leaves nothing behind.
"""

from __future__ import annotations

__version__ = "0.1.0"

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
from ._lease import LeaseRecord
from ._settings import Settings, load_settings
from ._stack import ServiceState, Stack

__all__ = [
    "Berth",
    "BerthPool",
    "BerthStatus",
    "ComposeError",
    "ConfigError",
    "DockerUnavailable",
    "DockyardError",
    "ExitCode",
    "LeaseRecord",
    "LockDirError",
    "NoFreeBerth",
    "ServiceState",
    "Settings",
    "Stack",
    "StackUnhealthy",
    "State",
    "acquire_berth",
    "load_settings",
    "running_stack",
]
