"""`dockyard up`, `down` and `run` as plainly typed: run before, and without, invoke.

`up`'s keeper (berth, images, stack) is what `dockyard up` waits for; this process's own
imports (invoke, the task collection) are not. Forked first, the keeper starts that work while
this process goes on. Once the command line is known to be plainly `up`, `down` or `run -- CMD`
with their own long flags, invoke's parser has nothing left to decide, and none of them needs
it to show its answer: it is not loaded at all (~0.1 CPU-s of the host's, during `up` taken
from the stack's start). Anything else, and a configuration that does not load, is left to
invoke's parser and the task, which say what is wrong.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

from dockyard.errors import DockyardError

_UP_OPTIONS = {"--json", "--no-build"}
_RUN_FLAGS = {"--no-up", "--reuse", "--cov"}
_forked: list[IO[str]] = []  # the answer of the keeper forked early, for `run` to read


def plainly_up(args: Sequence[str]) -> bool:
    """Whether ``args`` (the command line after the program's name) are ``up`` and its long options, once each."""
    options = args[1:]
    return bool(args) and args[0] == "up" and set(options) <= _UP_OPTIONS and len(set(options)) == len(options)


def plainly_down(args: Sequence[str]) -> tuple[int, bool] | None:
    """``(berth, all)`` when ``args`` are plainly ``down``, ``down --all`` or ``down --berth N``; else None."""
    match list(args):
        case ["down"]:
            return -1, False
        case ["down", "--all"]:
            return -1, True
        case ["down", "--berth", index] if index.isdigit():
            return int(index), False
    return None


def plainly_run(args: Sequence[str]) -> tuple[frozenset[str], list[str]] | None:
    """``(flags, command)`` when ``args`` are plainly ``run [--no-up] [--reuse] [--cov] -- CMD``; else None."""
    if not args or args[0] != "run" or "--" not in args:
        return None
    cut = list(args).index("--")
    flags, command = args[1:cut], list(args[cut + 1 :])
    if not command or not set(flags) <= _RUN_FLAGS or len(set(flags)) != len(flags):
        return None
    return frozenset(flags), command


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


def run(args: Sequence[str]) -> int | None:
    """Run a plain `up` (its keeper forked), `down` or `run` to its end; its exit status, None when left to invoke."""
    if plainly_up(args) and (answer := forked()) is not None:
        return bounded(lambda: show_up(answer, json="--json" in args))
    if (down := plainly_down(args)) is not None:
        return bounded(lambda: take_down(*down))
    if (session := plainly_run(args)) is not None:
        return bounded(lambda: run_session(*session))
    return None


def bounded(work: Callable[[], int | None]) -> int:
    """Run ``work`` as a task runs: a DockyardError becomes its message, its remedy and its exit code."""
    try:
        return work() or 0
    except (DockyardError, KeyboardInterrupt) as exc:
        message, code = ending(exc)
        print(message, file=sys.stderr)
        return code


def ending(exc: DockyardError | KeyboardInterrupt) -> tuple[str, int]:
    """What a command that ``exc`` ends prints (its message and remedy), and its exit status."""
    if isinstance(exc, KeyboardInterrupt):
        return "dockyard: interrupted", 130
    return f"dockyard: {exc}", int(exc.exit_code)


def show_up(answer: IO[str], *, json: bool) -> None:
    """Show the keeper's progress from ``answer``, then its berth: as JSON, or as a table of addresses."""
    from dockyard.sessions.keeper_client import keeper_answer  # noqa: PLC0415 - imported by the fork already
    from dockyard.ui.console import emit_json, reporter, table  # noqa: PLC0415

    with reporter() as progress:
        info = keeper_answer(answer, progress)
    if json:
        emit_json(info)
        return
    ports = [[svc, port, address] for svc, m in sorted(info["addresses"].items()) for port, address in m.items()]
    table(
        f"berth {info['index']}: {info['project']} (ports {info['port_block'][0]}-{info['port_block'][1]})",
        ["service", "container port", "address"],
        ports,
    )


def take_down(berth: int = -1, all: bool = False) -> None:
    """Stop the keeper of ``berth`` (default: the only stack `up` started here), or of every one with ``all``."""
    from dockyard.sessions import keeper_client as keeper  # noqa: PLC0415 - only `down` needs it
    from dockyard.settings import load_settings  # noqa: PLC0415
    from dockyard.ui.console import say  # noqa: PLC0415

    settings = load_settings()
    records = keeper.kept_berths(settings) if all else [keeper.choose(settings, None if berth < 0 else berth)]
    for record in records:
        began = time.monotonic()
        keeper.stop_keeper(settings, record)
        say(f"berth {record.index} ({record.project}) is down ({time.monotonic() - began:.1f}s)")


def run_session(flags: frozenset[str], command: list[str]) -> int:
    """`dockyard run [--no-up] [--reuse] [--cov] -- CMD`: the session, and the command's exit status."""
    from dockyard.sessions.run import run as run_command  # noqa: PLC0415 - only `run` needs the session
    from dockyard.settings import load_settings  # noqa: PLC0415

    return run_command(
        load_settings(), command, up="--no-up" not in flags, reuse="--reuse" in flags, cov="--cov" in flags
    )
