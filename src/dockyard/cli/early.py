"""`dockyard up`'s keeper, forked before the console script loads invoke and the tasks.

The keeper's work (berth, images, stack) is what `dockyard up` waits for; this process's own
imports (invoke, the task collection, rich) are not. Forked first, the keeper starts that
work while this process loads, on another core, instead of after. Only a command line that is
plainly `up` with its own long options is taken early; anything else, and a configuration that
does not load, is left to invoke's parser and the task, which say what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from dockyard.errors import DockyardError

_UP_OPTIONS = {"--json", "--no-build"}
_forked: list[IO[str]] = []  # the keeper's answer, for the `up` task to read


def plainly_up(args: Sequence[str]) -> bool:
    """Whether ``args`` (the command line after the program's name) are ``up`` and its long options, once each."""
    options = args[1:]
    return bool(args) and args[0] == "up" and set(options) <= _UP_OPTIONS and len(set(options)) == len(options)


def fork_keeper(args: Sequence[str]) -> None:
    """Fork `up`'s keeper now when ``args`` (the command line after the program's name) are plainly `up`."""
    if not plainly_up(args):
        return
    from dockyard.sessions.keeper_client import fork_keeper as fork  # noqa: PLC0415 - only `up` needs it
    from dockyard.settings import load_settings  # noqa: PLC0415

    try:
        settings = load_settings()
    except DockyardError:
        return  # the task loads them again and shows the error as every task does
    _forked.append(fork(settings, build="--no-build" not in args))


def forked() -> IO[str] | None:
    """The answer of the keeper forked for this `up`, taken once; None when none was."""
    return _forked.pop() if _forked else None
