"""`status`: the berths of every pool as one summary model, projected as table rows and as JSON."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError
from dockyard.pool import leasing
from dockyard.pool.berth import BerthPool, BerthStatus, State
from dockyard.pool.lease import LeaseRecord
from dockyard.sessions.keep import kept_note
from dockyard.sessions.keeper_client import KEEPER_PATH
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel
from dockyard.ui.console import human_age

# Free berths beyond the first few are counted under the title, not listed (`--all` lists them).
_FREE_SHOWN = 4

Ports = dict[str, dict[str, int]]  # service -> container port -> host port


@dataclass(frozen=True)
class BerthRow:
    """One berth of one pool, with the engine its stack runs on and its published ports."""

    status: BerthStatus
    pool: BerthPool
    engine: str | None  # None for a berth without a lease record
    ports: Ports | None  # only when its holder runs this project's stack

    @property
    def holder(self) -> LeaseRecord | None:
        """The lease record of the berth's holder (live) or of the holder that died (stale)."""
        return self.status.record

    def as_json(self) -> dict[str, Any]:
        """The row in the `status --json` shape (a contract: scripts read it)."""
        s = self.status
        return {
            "index": s.index,
            "state": s.state.value,
            "project": s.project,
            "port_block": s.port_block.to_json(),
            "ports": self.ports,
            "engine": self.engine,
            "scope": self.pool.scope,
            "holder": self.holder.to_json() if self.holder else None,
            "reason": s.reason,
            "kept": kept_note(self.pool.lock_path(s.index), s.record) or None,
        }


@dataclass(frozen=True)
class PoolStatus:
    """Every berth of every pool of the configured engines, as `status` shows them."""

    rows: list[BerthRow]
    root: Path  # the project directory, shown as ``here`` in the holder's column
    several_engines: bool  # more than one engine in play: the table gets an engine column
    taken: float  # when the snapshot was taken (epoch seconds), for the ages

    def as_json(self) -> list[dict[str, Any]]:
        """What `status --json` prints."""
        return [row.as_json() for row in self.rows]

    def as_table(self, *, every: bool = False) -> tuple[str, list[str], list[list[object]]]:
        """Title, columns and rows of the table; free berths past the first few only with ``every``."""
        shown = [r for r in self.rows if every or r.status.state is not State.FREE or r.status.index < _FREE_SHOWN]
        hidden = len(self.rows) - len(shown)
        where = ", ".join(dict.fromkeys(str(r.pool.lock_dir) for r in self.rows))
        title = f"berths in {where}" + (f" ({hidden} more free; --all lists them)" if hidden else "")
        engine = ["engine"] if self.several_engines else []
        columns = ["berth", "state", "project", "ports", "pid", "command", "where", "age", *engine, "note"]
        return title, columns, [self._cells(r) for r in shown]

    def _cells(self, row: BerthRow) -> list[object]:
        s, holder = row.status, row.holder
        engine = [row.engine or (f"({row.pool.scope})" if not row.pool.local else "")] if self.several_engines else []
        return [
            s.index,
            s.state.value,
            s.project,
            str(s.port_block),
            holder.pid if holder else "",
            short_command(holder.command) if holder else "",
            short_where(holder.cwd, self.root) if holder else "",
            human_age(self.taken - holder.started) if holder else "",
            *engine,
            s.reason or kept_note(row.pool.lock_path(s.index), holder, self.taken),
        ]


def pool_status(settings: Settings) -> PoolStatus:
    """The berths of every pool of the configured engines (one pool per port scope)."""
    pairs = list(leasing.statuses(settings))
    ports = published_ports(settings, [s for _, s in pairs])
    rows = [BerthRow(s, pool, engine_of(pool, s), ports.get(s)) for pool, s in pairs]
    # An engine column only once more than one engine is in play: with the one current engine
    # it would repeat the same endpoint on every row and squeeze the holder's columns.
    current = {e.endpoint for pool, _ in pairs for e in pool.engines}
    several = bool(settings.engines) or any(r.engine and r.engine not in current for r in rows)
    return PoolStatus(rows, settings.root, several, time.time())


def published_ports(settings: Settings, rows: list[BerthStatus]) -> dict[BerthStatus, Ports]:
    """Service -> container port -> host port of the live berths that run this project's stack.

    Keyed by the status row itself, not its index: rows of several pools may share an index.
    """
    ours = [s for s in rows if s.state is State.LIVE and s.record is not None and s.record.cwd == str(settings.root)]
    if not ours:
        return {}
    try:
        model = ComposeModel.load(settings)
    except DockyardError:
        return {}  # the compose files changed under a running stack: no ports rather than no status
    result: dict[BerthStatus, Ports] = {}
    for s in ours:
        for (service, target, _proto), host in model.port_map(s.port_block).items():
            result.setdefault(s, {}).setdefault(service, {})[str(target)] = host
    return result


def engine_of(pool: BerthPool, status: BerthStatus) -> str | None:
    """The engine a berth's stack runs on (None for a berth without a lease record)."""
    if status.record is None:
        return None
    return status.record.engine or pool.engines[0].endpoint  # "": a record from before engines


def short_command(command: str) -> str:
    """The holder's command, short: `dockyard up` for a keeper, others cut at 40 characters."""
    if command.startswith(KEEPER_PATH):
        return "dockyard up"
    words = command.split(" ", 1)
    program = Path(words[0])
    # The program's name, not its venv's path; `python -m dockyard` records .../dockyard/__main__.py.
    name = program.parent.name if program.name == "__main__.py" else program.name
    command = " ".join([name, *words[1:]])
    return command if len(command) <= 40 else command[:39] + "…"


def short_where(cwd: str, root: Path) -> str:
    """``here`` for this project's directory, else the last two parts of the holder's."""
    path = Path(cwd)
    return "here" if path == root else "…/" + "/".join(path.parts[-2:])
