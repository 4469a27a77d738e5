"""The journey of a job: submitted to the web server, done by the worker, its result served.

Every test starts from an empty Redis (``dockyard_fresh`` flushes it), so no test sees another
test's jobs. The worker is awaited by polling the job to a deadline, never by sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from dockyard import FreshState, Stack

DEADLINE_S = 30.0
POLL_S = 0.1


@pytest.fixture
def web(service_url: Callable[..., str], dockyard_fresh: FreshState) -> Iterator[httpx.Client]:
    """A client of the web server, over an emptied Redis."""
    with httpx.Client(base_url=service_url("web", 8080), timeout=5) as client:
        yield client


def submit(web: httpx.Client, text: str) -> str:
    """Queue a job; its id."""
    response = web.post("/jobs", json={"text": text})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{response.json()['id']}"
    return str(response.json()["id"])


def wait_done(web: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once the worker has done it; fails at the deadline with the job's last state."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        job: dict[str, Any] = web.get(f"/jobs/{job_id}").json()
        if job["status"] == "done":
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} not done after {DEADLINE_S:g}s: {job}")
        time.sleep(POLL_S)


def test_a_job_is_done_and_its_result_served(web: httpx.Client) -> None:
    job_id = submit(web, "ship it to the dock")
    job = wait_done(web, job_id)
    assert job == {
        "id": job_id,
        "status": "done",
        "text": "ship it to the dock",
        "result": {"words": 5, "upper": "SHIP IT TO THE DOCK"},
    }


def test_every_job_of_a_burst_is_done(web: httpx.Client) -> None:
    ids = [submit(web, f"job number {n}") for n in range(5)]
    results = [wait_done(web, job_id)["result"]["upper"] for job_id in ids]
    assert results == [f"JOB NUMBER {n}" for n in range(5)]


def test_jobs_wait_while_the_worker_is_down(
    web: httpx.Client, dockyard_stack: Stack, dockyard_fresh: FreshState
) -> None:
    queue = redis.Redis.from_url(dockyard_fresh.redis_url, socket_timeout=5)
    dockyard_stack.stop("worker")
    try:
        job_id = submit(web, "patience")
        assert web.get(f"/jobs/{job_id}").json()["status"] == "queued"
        assert queue.llen("jobqueue:pending") == 1
    finally:
        dockyard_stack.start("worker")  # the stack is shared by the session's other tests
        queue.close()
    assert wait_done(web, job_id)["result"] == {"words": 1, "upper": "PATIENCE"}


def test_every_test_starts_with_no_jobs(web: httpx.Client, dockyard_fresh: FreshState) -> None:
    queue = redis.Redis.from_url(dockyard_fresh.redis_url, socket_timeout=5)
    try:
        assert queue.llen("jobqueue:pending") == 0
        assert list(queue.scan_iter("jobqueue:job:*")) == []
    finally:
        queue.close()


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": 42}, [1, 2]])
def test_a_malformed_job_is_refused(web: httpx.Client, body: object) -> None:
    response = web.post("/jobs", json=body)
    assert response.status_code == 400
    assert "text" in response.json()["error"]


def test_an_unknown_job_is_404(web: httpx.Client) -> None:
    assert web.get("/jobs/" + "0" * 32).status_code == 404
