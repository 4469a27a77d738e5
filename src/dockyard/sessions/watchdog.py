"""The watchdog: reaps a berth's stack within seconds of its holder dying, however it died.

Ctrl-C and SIGTERM are handled by the holder itself (teardown in ``finally``). SIGKILL, an
OOM kill or a CI runner killing the whole process group leave no chance for that; so every
holder starts one of these, in a session of its own (a process-group kill does not reach
it). It sleeps on a pidfd of the holder (no polling) and, when the holder is gone without
having released its lease, removes everything labelled with that lease and the stale
record, under the berth's lock. A holder that releases normally stops its watchdog first.

No reaper container: none can be pulled on registry-less hosts, and many CI runtimes forbid
privileged sidecars. This is one small process per session, and it uses no CPU while it waits.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.pool.berth import Berth

_LOCK_WAIT = 30.0  # seconds to wait for the dead holder's lock; a new holder reaps instead


def start(lock_path: Path, lease_id: str, engine: str = "") -> subprocess.Popen[bytes]:
    """Start the watchdog of this process's lease on ``lock_path``, whose stack runs on ``engine``."""
    return subprocess.Popen(
        [sys.executable, "-m", "dockyard.sessions.watchdog", str(lock_path), lease_id, str(os.getpid()), engine],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives a kill of the holder's process group
        close_fds=True,
    )


def wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` has exited (at once if it has already)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (Linux < 5.3): poll for the process instead
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def reap_if_abandoned(lock_path: Path, lease_id: str, engine: str = "") -> bool:
    """After the holder died: reap its lease's resources if it did not release; whether it did reap.

    On ``engine`` (the lease's, given at start): not on whatever DOCKER_HOST says by now.
    """
    from filelock import FileLock, Timeout  # noqa: PLC0415 - keep the idle watchdog small

    from dockyard.errors import CorruptRecord  # noqa: PLC0415
    from dockyard.pool.lease import read_record, remove_record  # noqa: PLC0415

    record_path = lock_path.with_suffix(".json")
    lock = FileLock(lock_path, timeout=_LOCK_WAIT, thread_local=False, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        return False  # someone else holds the berth now; it reaped at acquire
    try:
        try:
            record = read_record(record_path)
        except CorruptRecord:
            record = None
        if record is not None and record.lease_id != lease_id:
            return False  # released and taken again since: not ours
        from dockyard.engine.endpoints import engine_for, sdk  # noqa: PLC0415
        from dockyard.engine.labels import find, remove  # noqa: PLC0415

        client = sdk(engine_for(engine or (record.engine if record is not None else "")))
        leftovers = find(client, **{"dockyard.lease": lease_id})
        remove(client, leftovers)
        if record is not None:
            remove_record(record_path)
        lock_path.with_suffix(".override.yml").unlink(missing_ok=True)
        return bool(leftovers) or record is not None
    finally:
        lock.release(force=True)


def main(lock_path: str, lease_id: str, pid: str, engine: str = "") -> int:
    """Wait for the holder ``pid`` to exit, then reap what it abandoned on ``engine``."""
    # SIGTERM from the holder means "released cleanly, stand down"; default action exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wait_for_exit(int(pid))
    reap_if_abandoned(Path(lock_path), lease_id, engine)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))


def watch(berth: Berth) -> None:
    """Start a watchdog that reaps ``berth``'s stack if this process dies holding it.

    ``DOCKYARD_WATCHDOG=0`` goes without (tests of the fallbacks: the next holder and
    ``cleanup`` reap instead). The berth stands it down when it is released.
    """
    if berth.watchdog is None and os.environ.get("DOCKYARD_WATCHDOG", "1") != "0":
        berth.watchdog = start(berth.lock_path, berth.record.lease_id, berth.record.engine)
