"""The keeper: a detached process that holds a berth for `dockyard up` until `dockyard down`.

A berth lives exactly as long as the process holding its lock. `dockyard up` must return
to the shell, so it starts this process in its own session; the keeper takes the berth,
starts the stack, writes one JSON line (the berth, or the error as
:meth:`~dockyard.errors.DockyardError.to_json` makes it) to its stdout, and then waits.
SIGTERM or SIGINT tears the stack down and releases the berth.

Given an *owner* (a test session's pid; see ``sessions/keep.py``), it also tears down when
the owner exits, unless the owner marked the berth kept after a test failure first: then it
holds the stack for whoever debugs it, until ``dockyard down``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from typing import IO

from dockyard.errors import DockyardError
from dockyard.host import wait_for_exit
from dockyard.pool import leasing
from dockyard.pool.berth import Berth
from dockyard.sessions.api import docker_reaper, note_seen_ready, seen_ready_path
from dockyard.sessions.keep import is_kept_after_failure, marker_path
from dockyard.sessions.watchdog import watch
from dockyard.settings import load_settings
from dockyard.stack.stack import Stack
from dockyard.ui.progress import JsonLines


def _follow(owner: int, berth: Berth, stop: threading.Event) -> None:
    """Set ``stop`` once ``owner`` has exited, unless it marked the berth kept."""
    wait_for_exit(owner)
    if not is_kept_after_failure(berth.lock_path, berth.record.lease_id):
        stop.set()


def main(root: str, build: str, owner: str = "") -> int:
    """Hold one berth with its stack up; print it; wait for the signal (or ``owner``'s end) to tear down."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        settings = load_settings(root)
        berth = leasing.acquire(settings, reaper=docker_reaper)
    except DockyardError as exc:
        print(json.dumps({"error": exc.to_json()}), flush=True)
        return int(exc.exit_code)
    try:
        watch(berth)
        # Events go to `dockyard up` as JSON lines; it shows them (live display or plain lines).
        stack = Stack(settings, berth, progress=JsonLines(sys.stdout))
        stack.up(build=build == "build")
        note_seen_ready(stack)
        if not hand_over(stack, sys.stdout):
            stack.down()  # `up` is gone (interrupted): nobody else would take this stack down
            return 130
        if owner:
            threading.Thread(target=_follow, args=(int(owner), berth, stop), daemon=True).start()
        stop.wait()
        stack.down()
        return 0
    except DockyardError as exc:
        if not sys.stdout.closed:  # after the berth line `up` has gone; the exit code tells the rest
            print(json.dumps({"error": exc.to_json()}), flush=True)
        return int(exc.exit_code)
    finally:
        marker_path(berth.lock_path).unlink(missing_ok=True)
        seen_ready_path(berth.lock_path).unlink(missing_ok=True)
        berth.release()


def hand_over(stack: Stack, out: IO[str]) -> bool:
    """Give `dockyard up` the berth on ``out`` and close it; False when `up` is no longer there to read it."""
    try:
        out.write(json.dumps({"berth": stack.describe()}) + "\n")
        out.close()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            out.close()  # what was left unflushed is lost with the reader
        return False
    return True


def detach() -> None:
    """Go on in a child of this process, which exits at once.

    `start_keeper` waits for the launcher, and the keeper (a child of init from then on) is no
    child of any process that would have to reap it or warn that it is still running.
    """
    if os.fork() != 0:
        os._exit(0)


if __name__ == "__main__":
    detach()
    sys.exit(main(*sys.argv[1:4]))
