"""`dockyard status` (the table and the --json contract) and the `parallel --json` summary: no Docker."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from invoke.context import Context

from dockyard.cli.status import pool_status, short_command
from dockyard.cli.tasks import status
from dockyard.pool.berth import BerthPool
from dockyard.pool.leasing import acquire_from
from dockyard.sessions import keeper, keeper_client
from dockyard.sessions.keeper_client import KEEPER_PATH, kept_berths
from dockyard.settings import Settings
from dockyard.shards.junit import Counts
from dockyard.shards.shard import ShardRun
from dockyard.shards.summary import Summary
from dockyard.ui import console as output
from dockyard.ui.console import table_rows

MakeSettings = Callable[..., Settings]


@pytest.fixture
def project(make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings of a throw-away project whose root is the working directory (as for the CLI)."""
    settings = make_settings(port_range="12000-12399", block_size=100)
    monkeypatch.chdir(settings.root)
    monkeypatch.setenv("CI", "1")  # plain tables
    output.console.cache_clear()
    yield settings
    output.console.cache_clear()


def test_status_json_keeps_the_contract(project: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status(Context(), json=True)
    berths = json.loads(capsys.readouterr().out)
    assert [b["index"] for b in berths] == [0, 1, 2, 3]
    first = berths[0]
    assert {"index", "state", "project", "port_block", "ports", "holder", "reason"} <= set(first)
    assert first["port_block"] == [12000, 12099]
    assert first["project"] == "dockyard-12000"
    assert first["state"] == "free"
    assert first["ports"] is None  # nobody runs this project's stack there


def test_status_json_shows_the_holder_as_its_record_file_does(
    project: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    berth = acquire_from([BerthPool(project)], timeout=1, reaper=None)
    try:
        status(Context(), json=True)
        on_disk = json.loads(berth.record_path.read_text())
    finally:
        berth.release()
    holder = json.loads(capsys.readouterr().out)[0]["holder"]
    assert list(holder) == [
        "lease_id",
        "index",
        "project",
        "port_block",
        "pid",
        "user",
        "host",
        "cwd",
        "command",
        "started",
        "engine",
        "engine_id",
    ]
    assert holder["port_block"] == on_disk["port_block"] == [12000, 12099]
    assert {k: v for k, v in holder.items() if k in on_disk} == on_disk


def test_status_table_names_the_holder_and_its_age(
    project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Held from another directory: another checkout's session, whose ports we do not compute.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    berth = acquire_from([BerthPool(project)], timeout=1, reaper=None)
    monkeypatch.chdir(project.root)
    try:
        status(Context())
    finally:
        berth.release()
    out = capsys.readouterr().out
    rows = table_rows(out)[1:]  # below the header
    assert rows[0][:5] == ["0", "live", "dockyard-12000", "12000-12099", str(os.getpid())]
    assert rows[0][5].startswith("pytest ")  # the program's name, not its path
    assert rows[0][6] == f"…/{tmp_path.name}/elsewhere"
    assert rows[0][7] in ("0s", "1s")
    assert rows[1][:2] == ["1", "free"]
    assert "\x1b[" not in out


def test_a_keepers_berth_reads_dockyard_up_and_down_finds_it(
    project: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.find_spec("dockyard.sessions.keeper")
    assert spec is not None
    assert spec.origin is not None
    # What `python -m dockyard.sessions.keeper` puts in argv, and so in the lease record.
    monkeypatch.setattr(sys, "argv", [spec.origin, str(project.root), "build"])
    berth = acquire_from([BerthPool(project)], timeout=1, reaper=None)
    try:
        status(Context())
        kept = keeper_client.kept_berths(project)
    finally:
        berth.release()
    assert [record.index for record in kept] == [0]
    assert table_rows(capsys.readouterr().out)[1][5] == "dockyard up"


def test_the_parallel_summary_as_json(tmp_path: Path) -> None:
    done = ShardRun(1, 2, ["t::a", "t::b"], tmp_path, exit_code=0, wall=20.5, counts=Counts(2, 2, 0, 0))
    done.report = {"index": 4, "project": "demo-20400", "port_block": [20400, 20499], "timings": {"up": 5.0}}
    broken = ShardRun(2, 2, ["t::c"], tmp_path, exit_code=5, began=4.0, wall=3.0)  # its stack never came up
    files = {"junit": "/x/junit.xml", "artifacts": []}
    data = Summary.of([done, broken], {"t::a": 1.0, "t::b": 2.0, "t::c": 4.0}, 21.0, files).as_json()
    json.dumps(data)  # it must serialise as is
    assert data["result"] == "failed"
    assert data["totals"] == {"shards": 2, "berths": 1, "tests": 3, "passed": 2, "failed": 0, "skipped": 0}
    assert data["junit"] == "/x/junit.xml"
    # The shape scripts rely on: these keys, in this order (the files are the caller's).
    assert list(data) == [
        *("result", "wall_seconds", "totals", "shards", "junit", "artifacts", "exit_code", "isolation_problems")
    ]
    assert (data["exit_code"], data["isolation_problems"]) == (5, [])
    first, second = data["shards"]
    assert list(first) == [
        *("shard", "berth", "project", "port_block", "tests", "passed", "failed", "skipped"),
        *("estimated_seconds", "up_seconds", "run_seconds", "began_seconds", "wall_seconds", "exit_code", "result"),
        "log",
    ]
    assert first["shard"] == "1/2"
    assert (first["berth"], first["port_block"], first["passed"]) == (4, [20400, 20499], 2)
    assert (first["estimated_seconds"], first["up_seconds"], first["run_seconds"]) == (3.0, 5.0, None)
    assert first["log"] == str(tmp_path / "shard-1.log")
    assert (second["berth"], second["passed"], second["result"], second["exit_code"]) == (None, None, "failed", 5)
    assert (first["began_seconds"], second["began_seconds"], second["wall_seconds"]) == (0.0, 4.0, 3.0)


def test_a_keepers_row_reads_dockyard_up_and_the_model_is_what_json_prints(
    project: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # How `dockyard up`'s keeper is recorded: `python -m dockyard.sessions.keeper` puts its path in argv[0].
    monkeypatch.setattr("sys.argv", [KEEPER_PATH, str(project.root), "build"])
    berth = acquire_from([BerthPool(project)], timeout=1, reaper=None)
    try:
        report = pool_status(project)
        status(Context(), json=True)
        assert [r.index for r in kept_berths(project)] == [0]  # what down, logs and exec act on
    finally:
        berth.release()
    assert Path(KEEPER_PATH) == Path(keeper.__file__)
    title, columns, rows = report.as_table()
    assert title.startswith(f"berths in {project.lock_dir}")
    assert "engine" not in columns  # one engine in play
    assert rows[0][columns.index("command")] == "dockyard up"
    assert rows[0][columns.index("where")] == "here"
    assert json.loads(capsys.readouterr().out)[0]["holder"]["command"].startswith(KEEPER_PATH)
    assert report.as_json()[0]["state"] == "live"


def test_the_table_lists_every_free_berth_only_when_asked(make_settings: MakeSettings) -> None:
    report = pool_status(make_settings(port_range="12000-12799", block_size=100))
    title, _, rows = report.as_table()
    assert [row[0] for row in rows] == [0, 1, 2, 3]
    assert title.endswith("(4 more free; --all lists them)")
    _, _, every = report.as_table(every=True)
    assert len(every) == 8


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("/venv/bin/nox -s e2e", "nox -s e2e"),
        ("/venv/lib/python3.11/site-packages/dockyard/__main__.py run -- pytest", "dockyard run -- pytest"),
        ("/venv/bin/pytest " + "x" * 60, "pytest " + "x" * 32 + "…"),
    ],
)
def test_a_holders_command_is_shortened(command: str, shown: str) -> None:
    assert short_command(command) == shown
