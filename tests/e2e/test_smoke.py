"""Smoke: every service of the stack is up, healthy and reachable through its berth port."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest
import redis

from dockyard import Stack

from .demo_api import APP_PORT, POSTGRES_PORT, REDIS_PORT, TIMEOUT_S, postgres_conninfo

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["auth", "backend"])
def test_http_service_reports_healthy(service_url: Callable[..., str], service: str) -> None:
    response = httpx.get(f"{service_url(service, APP_PORT)}/health", timeout=TIMEOUT_S)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_backend_sees_all_its_dependencies(service_url: Callable[..., str]) -> None:
    response = httpx.get(f"{service_url('backend', APP_PORT)}/health", timeout=TIMEOUT_S)

    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "auth": "ok"}


def test_postgres_holds_the_tables_both_services_created(dockyard_stack: Stack) -> None:
    with psycopg.connect(postgres_conninfo(dockyard_stack), connect_timeout=int(TIMEOUT_S)) as conn:
        row = conn.execute("SELECT to_regclass('users') IS NOT NULL, to_regclass('notes') IS NOT NULL").fetchone()

    assert row == (True, True)


def test_redis_answers_ping(dockyard_stack: Stack) -> None:
    url = dockyard_stack.url("redis", REDIS_PORT, scheme="redis")
    with redis.Redis.from_url(url, socket_timeout=TIMEOUT_S) as client:
        assert client.ping() is True


def test_every_published_port_lies_in_the_berth(dockyard_stack: Stack) -> None:
    ports = dockyard_stack.berth.ports
    expected = {"auth": APP_PORT, "backend": APP_PORT, "postgres": POSTGRES_PORT, "redis": REDIS_PORT}

    for service, container_port in expected.items():
        assert container_port in ports[service], f"{service}:{container_port} is not published"
    host_ports = [host for by_container in ports.values() for host in by_container.values()]
    # The compose files' fixed ports (8000, 8001, 5432, 6379) must all have been remapped.
    assert not {8000, 8001, 5432, 6379} & set(host_ports)
    assert len(set(host_ports)) == len(host_ports)
