"""The worker: takes queued jobs off Redis one at a time and writes their results back."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from types import FrameType

import redis

from . import store

# BRPOP blocks at most this long, so the heartbeat stays fresh while the queue is empty.
_POP_TIMEOUT_S = 1
_RETRY_S = 1


def _stop(_signum: int, _frame: FrameType | None) -> None:
    # As PID 1 the process has no default SIGTERM action; exit at once (a popped job that is
    # not finished yet is lost: acceptable for an example, a real queue would use BLMOVE).
    sys.exit(0)


def run_once(client: redis.Redis, heartbeat: str) -> str | None:
    """Refresh the heartbeat, then do one job if one comes within a second; its id."""
    client.set(heartbeat, "alive", ex=store.HEARTBEAT_TTL_S)
    popped = client.brpop([store.PENDING], timeout=_POP_TIMEOUT_S)
    if popped is None:
        return None
    job_id = str(popped[1])
    text = str(client.hget(store.job_key(job_id), "text") or "")
    client.hset(store.job_key(job_id), mapping={"status": "done", "result": json.dumps(store.work(text))})
    return job_id


def main() -> None:
    """Work until SIGTERM."""
    signal.signal(signal.SIGTERM, _stop)
    client = store.connect()
    heartbeat = f"{store.WORKER_PREFIX}{socket.gethostname()}"
    print("jobqueue worker started", flush=True)
    while True:
        try:
            job_id = run_once(client, heartbeat)
        except redis.ConnectionError as exc:
            # Redis restarting: say so and retry, backing off so a refused connection does not
            # spin (a retry pause of the app, not a wait for readiness).
            print(f"redis unavailable, retrying in {_RETRY_S}s: {exc}", flush=True)
            time.sleep(_RETRY_S)
            continue
        if job_id:
            print(f"job {job_id} done", flush=True)


if __name__ == "__main__":
    main()
