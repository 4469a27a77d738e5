"""The pure parts of the API teardown: reading the listing, choosing what to stop and for how long."""

from __future__ import annotations

from dockyard.stack.teardown import Container, stop_timeouts


def _row(cid: str, service: str, state: str) -> dict[str, object]:
    return {
        "Id": cid,
        "Names": [f"/demo-1-{service}-1"],
        "State": state,
        "Labels": {"com.docker.compose.service": service},
    }


def test_a_listing_row_reads_as_its_container() -> None:
    assert Container.from_row(_row("abc", "db", "running")) == Container("abc", "demo-1-db-1", "db", running=True)


def test_a_row_without_names_or_labels_is_named_by_its_id() -> None:
    container = Container.from_row({"Id": "0123456789abcdef", "State": "created", "Labels": None})
    assert (container.name, container.service, container.running) == ("0123456789ab", "", False)


def test_only_running_containers_are_stopped_each_with_the_timeout() -> None:
    containers = [Container.from_row(_row("a", "db", "running")), Container.from_row(_row("b", "web", "exited"))]
    assert stop_timeouts(containers, 3) == {"a": 3}


def test_the_services_given_narrow_what_is_stopped() -> None:
    containers = [Container.from_row(_row("a", "db", "running")), Container.from_row(_row("b", "web", "running"))]
    assert stop_timeouts(containers, 10, ["web"]) == {"b": 10}
