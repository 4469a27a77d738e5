"""`invoke up`, `invoke cleanup`, ...: dockyard's task collection, for this repository's demo stack."""

from dockyard.cli.tasks import namespace as ns

__all__ = ["ns"]
