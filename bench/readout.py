"""dockyard's machine-readable output, read into types: ``up --json``, ``status --json``,
``parallel --json`` and the ``dockyard run`` report (``DOCKYARD_RUN_REPORT``).

The bench never reads dockyard's human prose: these documents are the contract (DESIGN.md),
and a missing field is a BenchError naming the document and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench import BenchError


def _field(doc: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise BenchError(f"{what} has no {key!r}: {str(doc)[:200]}")
    return doc[key]


@dataclass(frozen=True)
class UpInfo:
    """The berth `dockyard up --json` started: index, project, port block, addresses."""

    index: int
    project: str
    port_block: tuple[int, int]
    addresses: dict[str, dict[int, str]]  # service -> container port -> host:port

    @classmethod
    def parse(cls, doc: Any) -> UpInfo:
        """Read the document `up --json` prints."""
        what = "`dockyard up --json`"
        first, last = _field(doc, "port_block", what)
        addresses = {
            str(svc): {int(port): str(addr) for port, addr in ports.items()}
            for svc, ports in _field(doc, "addresses", what).items()
        }
        return cls(int(_field(doc, "index", what)), str(_field(doc, "project", what)), (first, last), addresses)

    def url(self, service: str, port: int, path: str = "") -> str:
        """``http://host:port/path`` of a service's published port."""
        try:
            return f"http://{self.addresses[service][port]}{path}"
        except KeyError:
            raise BenchError(f"`dockyard up --json` publishes no port {port} of {service!r}") from None


def live_projects(doc: Any) -> set[str]:
    """Compose projects of the berths `status --json` lists as live."""
    if not isinstance(doc, list):
        raise BenchError(f"`dockyard status --json` is not a list: {str(doc)[:200]}")
    return {str(_field(b, "project", "a berth of `status --json`")) for b in doc if b.get("state") == "live"}


def holder_pid(doc: Any, project: str) -> int | None:
    """The pid holding the live berth of ``project`` in `status --json` (None when none does)."""
    for berth in doc if isinstance(doc, list) else []:
        if berth.get("state") == "live" and berth.get("project") == project and berth.get("holder"):
            return int(berth["holder"]["pid"])
    return None


def keepers_since(doc: Any, root: str, since: float) -> dict[str, int]:
    """Project -> pid of live berths whose holder is a `dockyard up` keeper started in ``root`` after ``since``."""
    found = {}
    for berth in doc if isinstance(doc, list) else []:
        holder = berth.get("holder") or {}
        if (
            berth.get("state") == "live"
            and holder.get("cwd") == root
            and holder.get("started", 0) >= since
            and "dockyard/sessions/keeper" in holder.get("command", "")
        ):
            found[str(berth["project"])] = int(holder["pid"])
    return found


@dataclass(frozen=True)
class RunReport:
    """What `dockyard run` held and how long each step took (its ``DOCKYARD_RUN_REPORT`` file)."""

    project: str
    exit_code: int | None
    timings: dict[str, float]  # acquire, up, run, down: seconds

    @classmethod
    def parse(cls, doc: Any) -> RunReport:
        """Read a run report."""
        what = "the `dockyard run` report"
        timings = {str(k): float(v) for k, v in _field(doc, "timings", what).items()}
        code = _field(doc, "exit_code", what)
        return cls(str(_field(doc, "project", what)), None if code is None else int(code), timings)


@dataclass(frozen=True)
class ParallelSummary:
    """The end of a `dockyard parallel --json` run: its wall time, each shard's, the verdict."""

    result: str
    exit_code: int
    wall_seconds: float
    shard_walls: list[float]  # of the shards that ran tests (an empty shard never starts), each from its start
    shard_ends: list[float]  # when each of them ended, seconds after the first began
    tests: int
    failed: int
    isolation_problems: list[str]

    @classmethod
    def parse(cls, doc: Any) -> ParallelSummary:
        """Read the document `parallel --json` prints."""
        what = "`dockyard parallel --json`"
        shards: Sequence[Mapping[str, Any]] = _field(doc, "shards", what)
        totals = _field(doc, "totals", what)
        return cls(
            result=str(_field(doc, "result", what)),
            exit_code=int(_field(doc, "exit_code", what)),
            wall_seconds=float(_field(doc, "wall_seconds", what)),
            shard_walls=[float(s["wall_seconds"]) for s in shards if s.get("wall_seconds") is not None],
            shard_ends=[
                float(s.get("began_seconds") or 0.0) + float(s["wall_seconds"])
                for s in shards
                if s.get("wall_seconds") is not None
            ],
            tests=int(_field(totals, "tests", what)),
            failed=int(totals.get("failed") or 0),
            isolation_problems=[str(p) for p in doc.get("isolation_problems") or []],
        )

    def failures(self) -> list[str]:
        """Why the run is not a clean pass (none when it is)."""
        why = []
        if self.result != "passed" or self.exit_code != 0:
            why.append(f"result {self.result}, exit {self.exit_code}, {self.failed} of {self.tests} test(s) failed")
        why += [f"not isolated: {p}" for p in self.isolation_problems]
        if not self.shard_walls:
            why.append("no shard ran a test")
        return why
