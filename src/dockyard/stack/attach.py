"""The runner's container (when tests run in one) joined to the stack's networks, and parted again."""

from __future__ import annotations

from dockyard.engine.labels import detach_foreign
from dockyard.engine.location import runner, say_once
from dockyard.errors import DockyardError
from dockyard.stack.project import ComposeProject
from dockyard.ui.progress import Reporter


def attach_runner(project: ComposeProject, mode: str, progress: Reporter) -> None:
    """Connect the runner's container, if there is one, to every network of ``project``."""
    from docker.errors import APIError  # noqa: PLC0415 - the project's `api` has imported docker-py

    place = runner(mode, project.berth.engine)
    say_once(place, progress)
    if place.container is None:
        return
    api = project.api
    for network in project.networks():
        try:
            api.connect_container_to_network(place.container, network)
        except APIError as exc:
            if "already exists" in str(exc.explanation or exc):
                continue  # attached already (a restarted `up` of the same project)
            raise DockyardError(
                f"could not attach the runner's container to network {network[:12]} of {project.name}: "
                f"{exc.explanation or exc}",
                remedy="set DOCKYARD_RUNNER=host and publish the stack's ports to the runner another way",
            ) from None


def detach_runner(project: ComposeProject, mode: str, progress: Reporter) -> None:
    """Disconnect the runner's container this process attached; the networks cannot go otherwise.

    Any other stranger on the networks is disconnected by the teardown itself (``down``).
    """
    from docker.errors import APIError  # noqa: PLC0415 - the project's `api` has imported docker-py

    try:
        if runner(mode, project.berth.engine).attached:
            for network in project.networks():
                detach_foreign(project.client, network, project.berth.record.lease_id)
    except (APIError, DockyardError) as exc:
        progress(f"could not detach the runner's container from {project.name}'s networks: {exc}")
