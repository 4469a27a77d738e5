"""The progress seam and its two faces: plain lines for CI and pipes, a rich live display for terminals.

No Docker: the events are fed by hand, as :mod:`dockyard.engine.images` and :mod:`dockyard.stack.readiness`
would send them.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from rich.console import Console

from dockyard.pool.berth import Berth
from dockyard.pool.lease import LeaseRecord
from dockyard.portblock import PortBlock
from dockyard.sessions.run import summarise
from dockyard.shards.shard import TO_COME
from dockyard.shards.view import LiveShards, PlainShards, last_note, shard_view
from dockyard.stack.readiness import StateReporter
from dockyard.stack.services import ServiceState
from dockyard.ui import console as output
from dockyard.ui.console import human_age, is_plain, reporter, say, summary
from dockyard.ui.live import LiveReporter
from dockyard.ui.progress import (
    BUILT,
    CACHED,
    FAILED,
    HEALTHY,
    PROBING,
    SILENT,
    STARTING,
    UNHEALTHY,
    WAITING,
    JsonLines,
    Lines,
    Reporter,
    as_reporter,
    plain_lines,
    replay,
)

ANSI = re.compile(r"\x1b\[")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_console() -> Iterator[None]:
    # The stderr console is cached per process; each test decides anew (CI, TTY).
    output.console.cache_clear()
    yield
    output.console.cache_clear()


def a_start(report: Reporter, clock: Clock) -> None:
    """The events of a stack start: one image built, one cached, two services, one slow to probe."""
    report("waiting: demo/auth:dev is being built by another session")
    report.image_started("demo/auth:dev", "auth")
    clock.now += 12.34
    report.image_done("demo/auth:dev", BUILT, 12.34)
    report.image_done("demo/db:dev", CACHED, 0.01)
    report.stack_starting("demo-20000", ["auth", "db"], PortBlock(20000, 100))
    report.service_state("db", STARTING)
    report.service_state("db", PROBING)
    clock.now += 0.8
    report.service_state("db", HEALTHY)
    report.service_state("auth", STARTING)
    report.service_state("auth", PROBING)
    clock.now += 2.0
    report.stack_ready("demo-20000", 15.2)


def test_plain_lines_say_each_change_once() -> None:
    clock, lines = Clock(), list[str]()
    a_start(as_reporter(Lines(lines.append, clock)), clock)
    assert lines == [
        "waiting: demo/auth:dev is being built by another session",
        "image demo/auth:dev: building (auth)",
        "image demo/auth:dev: built in 12.3s",
        "image demo/db:dev: cached",
        "starting demo-20000 on ports 20000-20099: auth, db",
        "db: starting",
        "db: probing health",
        "db: healthy (0.8s)",
        "auth: starting",
        "auth: probing health",
        "demo-20000 ready in 15.2s",
    ]


def test_a_restart_times_healthy_from_the_first_report() -> None:
    clock, lines = Clock(), list[str]()
    report = as_reporter(Lines(lines.append, clock))
    report.service_state("db", PROBING)  # a restart: no stack_starting, no starting
    clock.now += 1.25
    report.service_state("db", HEALTHY)
    assert lines == ["db: probing health", "db: healthy (1.2s)"]


def test_a_service_state_repeated_reaches_the_reporter_once() -> None:
    lines: list[str] = []
    report = as_reporter(lines.append)
    report.stack_starting("p", ["db"], PortBlock(1, 2))
    report.service_state("db", WAITING)  # already waiting since the stack started
    for _ in range(3):
        report.service_state("db", PROBING)
    report.service_state("db", UNHEALTHY, "is unhealthy")
    assert lines == ["starting p on ports 1-2: db", "db: probing health", "db: unhealthy: is unhealthy"]
    assert as_reporter(report) is report  # wrapping twice changes nothing


def test_plain_lines_go_to_stderr_prefixed_and_without_escape_codes(capsys: pytest.CaptureFixture[str]) -> None:
    a_start(as_reporter(plain_lines(sys.stderr)), Clock())
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == "dockyard: waiting: demo/auth:dev is being built by another session"
    assert all(line.startswith("dockyard: ") for line in err.splitlines())
    assert not ANSI.search(err)


def test_the_default_reporter_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    assert as_reporter(None) is SILENT
    assert as_reporter(SILENT) is SILENT
    assert isinstance(SILENT, Reporter)
    a_start(SILENT, Clock())
    assert capsys.readouterr() == ("", "")


def test_events_cross_a_pipe_as_json_lines() -> None:
    stream = io.StringIO()
    clock = Clock()
    a_start(JsonLines(stream), clock)
    messages = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert messages[0] == {"event": "message", "args": {"message": a_message()}}
    lines: list[str] = []
    replayed = Lines(lines.append, Clock())
    assert all(replay(m, replayed) for m in messages)
    assert not replay({"berth": {"index": 0}}, replayed)  # the keeper's answer is no event
    assert "starting demo-20000 on ports 20000-20099: auth, db" in lines
    assert lines[-1] == "demo-20000 ready in 15.2s"


def test_a_port_block_crosses_the_pipe_as_first_and_last() -> None:
    stream = io.StringIO()

    JsonLines(stream).stack_starting("demo-20000", ["db"], PortBlock(20000, 100))

    assert stream.getvalue() == (
        '{"event": "stack_starting", "args": {"project": "demo-20000", "services": ["db"], '
        '"port_block": [20000, 20099]}}\n'
    )
    seen: list[PortBlock] = []

    class Blocks(Reporter):
        def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
            seen.append(port_block)

    assert replay(json.loads(stream.getvalue()), Blocks())
    assert seen == [PortBlock(20000, 100)]


def a_message() -> str:
    return "waiting: demo/auth:dev is being built by another session"


def recording() -> Console:
    """A terminal as rich sees one, writing into memory and recording what it shows."""
    return Console(record=True, force_terminal=True, width=100, color_system="truecolor", file=io.StringIO())


def test_the_live_display_renders_every_row() -> None:
    clock, console = Clock(), recording()
    live = LiveReporter(console, clock)
    with live:
        a_start(live, clock)
        assert live._live is None  # stopped once the stack is ready: the command gets the terminal
    console.print(live.render())
    assert ANSI.search(console.export_text(styles=True, clear=False))  # colour and spinners on a terminal
    text = console.export_text()
    assert "waiting: demo/auth:dev is being built by another session" in text
    assert "demo-20000  ports 20000-20099  ready in 15.2s" in text
    assert re.search(r"✓ image demo/auth:dev\s+built \(12\.3s\)", text)
    assert re.search(r"✓ image demo/db:dev\s+cached", text)
    assert re.search(r"✓ db\s+healthy \(0\.8s\)", text)
    assert re.search(r"auth\s+probing health 2\.0s", text)


def test_the_live_display_shows_failures_and_prints_lines_once_closed() -> None:
    clock, console = Clock(), recording()
    with LiveReporter(console, clock) as live:
        live.stack_starting("demo-20000", ["db"], PortBlock(20000, 100))
        live.service_state("db", FAILED, "exited with code 3 during start")
    live.service_state("db", STARTING)  # e.g. `dockyard restart` after the display ended
    text = console.export_text()
    assert re.search(r"✗ db\s+failed: exited with code 3 during start", text)
    assert text.endswith("dockyard: db: starting\n")


def test_ci_or_a_pipe_gets_plain_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CI", "1")
    assert is_plain()
    with reporter() as report:
        assert isinstance(report, Lines)
        a_start(as_reporter(report), Clock())
    say("done")
    summary("run passed", [("stack ready in", "4.20s"), ("command", "exit 0 after 1.00s")])
    err = capsys.readouterr().err
    assert not ANSI.search(err)
    assert "dockyard: db: probing health\n" in err
    assert err.splitlines()[-4:] == [
        "dockyard: done",
        "dockyard: run passed",
        "  stack ready in: 4.20s",
        "  command: exit 0 after 1.00s",
    ]


def test_not_a_terminal_is_plain_even_without_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert is_plain(io.StringIO())  # captured stderr, a pipe, a file
    assert not output.console().is_terminal

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not is_plain(Tty())
    monkeypatch.setenv("CI", "true")
    assert is_plain(Tty())  # CI runners often hand out a TTY; their logs still want plain text
    monkeypatch.delenv("CI")
    monkeypatch.setenv("TERM", "dumb")
    assert is_plain(Tty())


def test_the_run_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CI", "1")
    record = LeaseRecord.for_current_process(3, "demo-20300", PortBlock(20300, 100))
    berth = Berth(3, "demo-20300", PortBlock(20300, 100), tmp_path / "berth-3.lock", record)
    berth.ports = {"auth": {8000: 20300}, "db": {5432: 20301}}
    bundle = tmp_path / "artifacts" / "demo-20300-x"
    summarise(berth, {"acquire": 0.01, "up": 4.2, "run": 12.3, "down": 1.1}, 1, [bundle])
    assert capsys.readouterr().err.splitlines() == [
        "dockyard: run failed",
        "  berth: 3 (demo-20300), ports 20300-20399",
        "  ports: auth:8000->20300, db:5432->20301",
        "  acquired in: 0.01s",
        "  stack ready in: 4.20s",
        "  command: exit 1 after 12.30s",
        "  teardown: 1.10s",
        f"  artifacts: {bundle}",
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(-1, "0s"), (42.9, "42s"), (185, "3m05s"), (7800, "2h10m"), (97200, "1d03h")]
)
def test_human_age(seconds: float, shown: str) -> None:
    assert human_age(seconds) == shown


def test_engine_states_map_to_progress_states() -> None:
    lines: list[str] = []
    states = StateReporter(as_reporter(Lines(lines.append, Clock())), health_timeout=9)

    def state(state: str, health: str = "", code: int | None = None) -> ServiceState:
        return ServiceState("db", "demo-db-1", state, health, code)

    states.report("db", None, passed=False)
    states.report("db", state("created"), passed=False)
    states.report("db", state("running", "starting"), passed=False)
    states.report("db", state("running", "starting"), passed=True)
    states.report("db", state("running", "healthy"), passed=False)
    states.report("db", state("running", "unhealthy"), passed=False)
    states.report("db", state("exited", code=3), passed=False)
    assert lines == [
        "db: waiting",
        "db: probing health",
        "db: healthy (0.0s)",
        "db: unhealthy: is unhealthy",
        "db: failed: exited with code 3 during start",
    ]


def test_shards_in_plain_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CI", "1")
    with shard_view() as view:
        assert isinstance(view, PlainShards)
        view.queued("1/2", 12)
        view.started("1/2", 12, Path("/run/shard-1.log"))
        view.note("1/2", "backend: probing health")  # in the shard's own log already
        view.stack_up("1/2", 3, "demo-20300", 8.14)
        view.ended("1/2", 0, 41.25)
    assert capsys.readouterr().err.splitlines() == [
        "dockyard: shard 1/2: 12 test(s), log shard-1.log",
        "dockyard: shard 1/2: stack up in berth 3 (demo-20300) in 8.1s, running tests",
        "dockyard: shard 1/2 ended (exit 0) after 41.2s",
    ]


def test_shards_in_a_live_display(tmp_path: Path) -> None:
    clock, console = Clock(), recording()
    log = tmp_path / "shard-1.log"
    log.write_text("collected\ndockyard: starting demo on ports 1-2: db\ndockyard: db: probing health\n.....\n")
    with LiveShards(console, clock) as view:
        view.queued("1/2", 12)
        view.queued("2/2", 11)
        console.print(view.render())
        view.started("1/2", 12, log)
        view.started("2/2", 11, tmp_path / "shard-2.log")
        view.note("1/2", last_note(log))
        view.note("2/2", last_note(tmp_path / "shard-2.log"))  # no log yet: no note
        clock.now += 5
        console.print(view.render())
        view.stack_up("2/2", 3, "demo-20300", 4.0)
        view.ended("2/2", 1, 30.0)
        console.print(view.render())
    text = console.export_text()
    assert re.search(r"shard 2/2\s+11 tests\s+queued\s+0\.0s", text)
    assert re.search(r"shard 1/2\s+12 tests\s+starting stack: db: probing health\s+5\.0s", text)
    assert re.search(r"shard 2/2\s+11 tests\s+starting stack\s+5\.0s", text)
    assert re.search(r"✗ shard 2/2\s+berth 3 demo-20300\s+11 tests\s+failed \(exit 1\)\s+30\.0s", text)


def test_a_shard_started_before_the_split_shows_its_tests_once_counted(tmp_path: Path) -> None:
    clock, console = Clock(), recording()
    with LiveShards(console, clock) as view:
        view.queued("1/2", TO_COME)
        view.started("1/2", TO_COME, tmp_path / "shard-1.log")
        console.print(view.render())
        view.counted("1/2", 7)
        console.print(view.render())
    text = console.export_text()
    assert re.search(r"shard 1/2\s+tests to come\s+starting stack", text)
    assert re.search(r"shard 1/2\s+7 tests\s+starting stack", text)


def test_a_pending_shard_in_plain_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CI", "1")
    with shard_view() as view:
        view.started("2/4", TO_COME, Path("/run/shard-2.log"))
        view.counted("2/4", 7)  # the split's own line says how many
    assert capsys.readouterr().err.splitlines() == ["dockyard: shard 2/4: tests to come, log shard-2.log"]
