"""The berth's override file: published ports remapped into its block on 127.0.0.1, labels on all.

(With coverage on, the measured services' coverage mount and variables: see ``stack/coverage.py``.)

(On a TCP engine of another host, on that host's address: see :func:`publish_address`.)

The text comes from :meth:`ComposeModel.override`; this role owns the file: where it lives
(beside the berth's lock, private to the user) and its writing and removal.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.engine.endpoints import preflight, publish_address
from dockyard.engine.labels import labels_for
from dockyard.pool.berth import Berth, pool_id
from dockyard.stack.compose import ComposeModel
from dockyard.stack.coverage import ServiceCoverage


def berth_labels(berth: Berth) -> dict[str, str]:
    """The ``dockyard.*`` labels of everything the berth's stack creates."""
    return labels_for(
        berth.index,
        berth.project,
        berth.lock_path,
        berth.record.lease_id,
        berth.record.started,
        pool=pool_id(berth.lock_path.parent, create=True),
    )


def override_path(berth: Berth) -> Path:
    """Where the berth's override file lives."""
    # Beside the berth's lock, so berths of two pools (two engines' scopes) never share one.
    return berth.lock_path.with_suffix(".override.yml")


class Override:
    """The override file of one berth."""

    def __init__(
        self,
        model: ComposeModel,
        berth: Berth,
        labels: dict[str, str] | None = None,
        *,
        coverage: ServiceCoverage | None = None,
    ) -> None:
        self.model = model
        self.berth = berth
        self.labels = berth_labels(berth) if labels is None else labels
        self.path = override_path(berth)
        self.coverage = coverage

    def write(self) -> Path:
        """Write the file (mode 0600) and return its path."""
        address = publish_address(self.berth.engine)
        extra = self.coverage.override_lines(self._image_env) if self.coverage is not None else None
        text = self.model.override(self.berth.project, self.berth.port_block, self.labels, address, extra)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return self.path

    def remove(self) -> None:
        """Remove the file (gone already is fine)."""
        self.path.unlink(missing_ok=True)

    def _image_env(self, image: str) -> dict[str, str]:
        """The environment ``image`` sets ({} while it is not built)."""
        import docker.errors  # noqa: PLC0415 - docker-py, only when a measured service needs it

        try:
            attrs = preflight(self.berth.engine).images.get(image).attrs
        except docker.errors.ImageNotFound:
            return {}
        pairs = (entry.partition("=") for entry in (attrs.get("Config") or {}).get("Env") or [])
        return {key: value for key, _, value in pairs}
