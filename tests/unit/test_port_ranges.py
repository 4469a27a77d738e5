"""The integration tests' projects (and private pools) never share host ports.

Each project has a lock directory of its own, so two of them on one port range do not see
each other's berths: run at once on two xdist workers, the second stack's start fails with
"port is already allocated".
"""

from __future__ import annotations

import re
from pathlib import Path

from dockyard.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
_PROJECT = re.compile(r'make_project\(\s*f?"([^"]+)",\s*"(\d+)-(\d+)"')
_POOL = re.compile(r'DOCKYARD_PORT_RANGE="((\d+)-(\d+))"')  # a private pool of a test's own, named by its range


def test_no_two_integration_projects_share_a_port() -> None:
    ranges = sorted(
        (int(low), int(high), f"{path.relative_to(ROOT)}: {name}")
        for directory in ("tests/integration", "tests/chaos")
        for path in sorted((ROOT / directory).glob("*.py"))
        for pattern in (_PROJECT, _POOL)
        for name, low, high in pattern.findall(path.read_text())
    )
    assert len(ranges) > 20  # the pattern still finds the projects
    # This repository's own project, on the host's pool (the Podman and runner-container tests).
    demo = load_settings(ROOT, env={})
    first, last = demo.port_block(0), demo.port_block(demo.max_berths - 1)
    ranges = sorted([*ranges, (first.start, last.last, "the demo project on the host's pool")])
    shared, reach, reacher = [], -1, ""
    for low, high, where in ranges:
        if low <= reach:
            shared.append((reacher, where))
        if high > reach:
            reach, reacher = high, where
    assert shared == []
