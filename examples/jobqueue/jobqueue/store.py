"""The jobs in Redis, as the web server and the worker both see them.

A job is a hash ``jobqueue:job:<id>`` (``status``, ``text``, later ``result``); the ids of
jobs waiting for a worker are the list ``jobqueue:pending`` (LPUSH in, BRPOP out: first in,
first out). A worker refreshes ``jobqueue:worker:<host>`` while it runs.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import redis

PENDING = "jobqueue:pending"
WORKER_PREFIX = "jobqueue:worker:"
HEARTBEAT_TTL_S = 5


def connect() -> redis.Redis:
    """A client for ``REDIS_URL`` that hands out str, not bytes."""
    url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def job_key(job_id: str) -> str:
    """The Redis key of job ``job_id``."""
    return f"jobqueue:job:{job_id}"


def submit(client: redis.Redis, text: str) -> str:
    """Record a job and queue it for a worker; its id."""
    job_id = uuid.uuid4().hex
    # One transaction: a worker never pops an id whose hash is not written yet.
    pipe = client.pipeline(transaction=True)
    pipe.hset(job_key(job_id), mapping={"status": "queued", "text": text})
    pipe.lpush(PENDING, job_id)
    pipe.execute()
    return job_id


def fetch(client: redis.Redis, job_id: str) -> dict[str, Any] | None:
    """A job as the API shows it, or None when there is no such job."""
    # str() only for the type checker: the client decodes replies (decode_responses).
    fields = {str(k): str(v) for k, v in client.hgetall(job_key(job_id)).items()}
    if not fields:
        return None
    job: dict[str, Any] = {"id": job_id, "status": fields["status"], "text": fields["text"]}
    if "result" in fields:
        job["result"] = json.loads(fields["result"])
    return job


def work(text: str) -> dict[str, Any]:
    """What the worker makes of a job's text."""
    return {"words": len(text.split()), "upper": text.upper()}


def workers(client: redis.Redis) -> int:
    """How many workers refreshed their heartbeat within the last few seconds."""
    return sum(1 for _ in client.scan_iter(f"{WORKER_PREFIX}*"))
