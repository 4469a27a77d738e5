"""`cleanup`: which dockyard-labelled resources and lease records go, on which engines, and removing them.

The policy: orphans (resources whose lease is over) go wherever they come from; with
``older_than`` or ``everything``, held resources go too, but only this pool's (its lock
directories), never the live stacks of another pool (e.g. another user's). An engine that
does not answer is skipped, and the stale records of stacks that ran there are kept, so a
later cleanup still finds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.engine.endpoints import Engine, engine_for, preflight
from dockyard.engine.labels import Resource, find, remove
from dockyard.errors import DockerUnavailable, DockyardError
from dockyard.pool import leasing
from dockyard.pool.berth import BerthPool, BerthStatus, State
from dockyard.pool.lease import remove_record
from dockyard.pool.reaping import parse_duration, select_for_cleanup
from dockyard.settings import Settings

if TYPE_CHECKING:
    from docker import DockerClient


@dataclass
class EngineSweep:
    """What goes on one engine."""

    engine: Engine
    client: DockerClient
    doomed: list[Resource]


@dataclass
class CleanupPlan:
    """Everything a cleanup removes, found before anything is removed."""

    sweeps: list[EngineSweep]
    stale: list[tuple[BerthPool, BerthStatus]]  # berths whose holder died: their records go
    unreachable: dict[str, str] = field(default_factory=dict)  # endpoint -> why it was skipped
    several_engines: bool = False

    @property
    def resources(self) -> list[tuple[Resource, Engine]]:
        """Each doomed resource with its engine, in the order they are found."""
        return [(res, sweep.engine) for sweep in self.sweeps for res in sweep.doomed]

    def carry_out(self) -> list[str]:
        """Remove the resources, then the stale records; what could not be removed, as text."""
        problems = [problem for sweep in self.sweeps for problem in remove(sweep.client, sweep.doomed)]
        for pool, s in self.stale:
            # A record whose engine did not answer stays: it is how a later cleanup finds that stack.
            if not (s.record and s.record.engine in self.unreachable):
                remove_record(pool.lock_path(s.index).with_suffix(".json"))
        return problems


def older_than(text: str) -> float | None:
    """The ``--older-than`` option in seconds (None when not given)."""
    try:
        return parse_duration(text) if text else None
    except ValueError as exc:
        raise DockyardError(f"--older-than: {exc}") from None


def plan(settings: Settings, *, age: float | None = None, everything: bool = False) -> CleanupPlan:
    """Find what to remove on every configured engine and every engine a stale lease ran on.

    Raises :class:`DockerUnavailable` when the one engine in play does not answer.
    """
    stale = [(pool, s) for pool, s in leasing.statuses(settings) if s.state is State.STALE]
    pools = leasing.pools(settings)
    ours = {pool.lock_dir for pool in pools}
    # DOCKER_HOST may differ from when a stale lease was taken: its record names its engine.
    engines = [*{e: None for pool in pools for e in pool.engines}]
    engines += [e for e in {engine_for(s.record.engine): None for _, s in stale if s.record} if e not in engines]
    result = CleanupPlan([], stale, several_engines=len(engines) > 1)
    for engine in engines:
        try:
            client = preflight(engine)
        except DockerUnavailable as exc:
            if len(engines) == 1:
                raise
            result.unreachable[engine.endpoint] = str(exc).splitlines()[0]
            continue  # the other engines' orphans still go
        result.sweeps.append(EngineSweep(engine, client, _doomed(find(client), ours, age, everything)))
    return result


def _doomed(found: list[Resource], ours: set[Path], age: float | None, everything: bool) -> list[Resource]:
    mine = [r for r in found if Path(r.labels.get("dockyard.lock", "")).parent in ours]
    return [
        *select_for_cleanup(mine, older_than=age, everything=everything),
        *select_for_cleanup([r for r in found if r not in mine], older_than=None, everything=False),
    ]
