"""The keeper: a detached process that holds a berth for `dockyard up` until `dockyard down`.

A berth lives exactly as long as the process holding its lock. `dockyard up` must return
to the shell, so it starts this process in its own session; the keeper takes the berth,
starts the stack, writes one JSON line (the berth, or the error as
:meth:`~dockyard.errors.DockyardError.to_json` makes it) to its stdout, and then waits.
SIGTERM or SIGINT tears the stack down and releases the berth.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from dockyard.errors import DockyardError
from dockyard.pool import leasing
from dockyard.sessions.api import docker_reaper
from dockyard.sessions.watchdog import watch
from dockyard.settings import load_settings
from dockyard.stack.stack import Stack
from dockyard.ui.progress import JsonLines


def main(root: str, build: str) -> int:
    """Hold one berth with its stack up; print it; wait for the signal to tear down."""
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
        print(json.dumps({"berth": stack.describe()}), flush=True)
        sys.stdout.close()
        stop.wait()
        stack.down()
        return 0
    except DockyardError as exc:
        print(json.dumps({"error": exc.to_json()}), flush=True)
        return int(exc.exit_code)
    finally:
        berth.release()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
