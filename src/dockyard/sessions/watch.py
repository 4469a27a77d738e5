"""`dockyard watch -- CMD`: the stack kept up while you edit; services rebuilt, CMD re-run.

One berth for as long as the watch runs (like ``dockyard run``). CMD runs once the stack is
healthy, then again after every batch of changes:

* a change to a file that goes into a service's image (under its build context and not
  excluded by the context's ``.dockerignore``) rebuilds that image and recreates only that
  service, waiting until it is healthy again, before CMD runs;
* a change under the test paths (default ``tests``) only runs CMD again.

A run of CMD still going when a change comes is stopped first. Changes are batched by
watchfiles (its Rust notify backend: no polling) until none came for ``step`` ms. Ctrl-C (or
SIGTERM) stops CMD, tears the stack down and releases the berth.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.host import die_with_parent
from dockyard.pool import leasing
from dockyard.sessions.api import docker_reaper
from dockyard.sessions.run import child_env
from dockyard.sessions.signals import Terminated, on_sigterm
from dockyard.sessions.watchdog import watch as watchdog
from dockyard.settings import Settings
from dockyard.stack.stack import Stack
from dockyard.ui.console import reporter, say
from dockyard.ui.progress import as_reporter

STEP_MS = 50  # a batch of changes ends once none came for this long
DEBOUNCE_MS = 1600  # and never groups for longer than this
WAKE_MS = 200  # the watcher hands back an empty batch this often when nothing changed


@dataclass
class Plan:
    """What a watch looks at, and what each changed path means."""

    contexts: dict[str, tuple[Path, list[str]]]  # service -> (build context, .dockerignore patterns)
    tests: list[Path]
    ignored: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """The directories to watch (each once)."""
        roots = [*(context for context, _ in self.contexts.values()), *self.tests]
        return [p for p in dict.fromkeys(roots) if p.exists()]

    def classify(self, changed: Iterable[Path]) -> tuple[list[str], bool]:
        """(services to rebuild, whether CMD must run again) for a batch of changed paths."""
        from docker.utils.build import PatternMatcher  # noqa: PLC0415 - docker-py, only once files change

        services: set[str] = set()
        rerun = False
        for path in changed:
            if any(path.is_relative_to(p) for p in self.ignored):
                continue
            for service, (context, patterns) in self.contexts.items():
                if path.is_relative_to(context):
                    rel = path.relative_to(context)
                    matcher = PatternMatcher(patterns)
                    # Excluded when the path or a folder above it is (".dockerignore" semantics).
                    parts = [Path(*rel.parts[: i + 1]).as_posix() for i in range(len(rel.parts))]
                    # types-docker says PathLike; docker-py calls .lower() on it, so a str it is.
                    if not any(matcher.matches(part) for part in parts):  # type: ignore[arg-type]
                        services.add(service)
            if any(path.is_relative_to(t) for t in self.tests):
                rerun = True
        return sorted(services), rerun or bool(services)


def plan(stack: Stack, services: Sequence[str], tests: Sequence[str]) -> Plan:
    """The watch plan of ``stack``: the build contexts of ``services`` (default all built ones), ``tests``."""
    root = stack.settings.root
    specs = {s.service: s for s in stack.model.build_specs()}
    unknown = [s for s in services if s not in stack.model.services]
    if unknown:
        raise DockyardError(
            f"--services: no service {unknown[0]!r} in the compose files",
            remedy=f"choose among {', '.join(sorted(stack.model.services))}",
        )
    unbuilt = [s for s in services if s not in specs]
    if unbuilt:
        raise DockyardError(
            f"--services: {unbuilt[0]!r} has no `build:` section, so there is nothing to rebuild when files change",
            remedy=f"watch services that dockyard builds: {', '.join(sorted(specs)) or '(none)'}",
        )
    contexts = {}
    for name in services or sorted(specs):
        context = specs[name].context.resolve()
        ignore = context / ".dockerignore"
        patterns = [
            line.strip()
            for line in (ignore.read_text().splitlines() if ignore.is_file() else [])
            if line.strip() and not line.startswith("#")
        ]
        contexts[name] = (context, patterns)
    test_paths = [(root / t).resolve() for t in (tests or ["tests"])]
    ignored = [
        stack.settings.lock_dir.resolve(),
        stack.settings.artifacts_dir.resolve(),
        root / ".dockyard",
        root / ".nox",
    ]
    result = Plan(contexts, test_paths, ignored)
    if not result.paths:
        raise DockyardError(
            f"nothing to watch: no service is built and {', '.join(map(str, test_paths))} does not exist",
            remedy="name the test paths with --tests",
        )
    return result


class _Command:
    """CMD, run again and again; its exit reported as it happens."""

    def __init__(self, command: Sequence[str], env: dict[str, str]) -> None:
        self.command = list(command)
        self.env = env
        self.child: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, why: str) -> None:
        self.stop()
        self.runs += 1
        say(f"run {self.runs} ({why}): {' '.join(self.command)}")
        began = time.monotonic()
        child = subprocess.Popen(self.command, env=self.env, preexec_fn=die_with_parent())  # noqa: PLW1509 - as in run
        self.child = child

        def report() -> None:
            code = child.wait()
            if code >= 0:  # negative: stopped by us for the next run, which says why
                outcome = "passed" if code == 0 else f"failed (exit {code})"
                say(f"run {self.runs} {outcome} after {time.monotonic() - began:.1f}s; watching for changes")

        threading.Thread(target=report, daemon=True).start()

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.child = None


def watch(
    settings: Settings, command: Sequence[str], *, services: Sequence[str] = (), tests: Sequence[str] = ()
) -> int:
    """Hold a berth with the stack up; rebuild changed services and re-run ``command`` until interrupted."""
    import watchfiles  # noqa: PLC0415 - its Rust extension, only for `dockyard watch`

    if not command:
        raise DockyardError("nothing to run", remedy="give a command after `--`, e.g. `dockyard watch -- pytest -x`")
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        berth = leasing.acquire(settings, reaper=docker_reaper)
        try:
            watchdog(berth)
            with reporter() as progress:
                stack = Stack(settings, berth, progress=progress)
                stack.up()
            stack.progress = as_reporter(say)  # plain lines from now on: CMD shares the terminal
            cmd = _Command(command, child_env(stack, None))
            try:
                what = plan(stack, services, tests)
                # yield_on_timeout: an empty batch once the watcher is live, so CMD's first run
                # starts only then, and no change made while it runs can be missed.
                for changes in watchfiles.watch(
                    *what.paths, debounce=DEBOUNCE_MS, step=STEP_MS, rust_timeout=WAKE_MS, yield_on_timeout=True
                ):
                    if not changes:
                        if cmd.runs == 0:
                            say(
                                "watching "
                                + ", ".join(str(p) for p in what.paths)
                                + f" (services: {', '.join(what.contexts) or 'none'}); Ctrl-C tears down"
                            )
                            cmd.start("the stack is up")
                        continue
                    rebuild, rerun = what.classify(Path(p) for _, p in changes)
                    if rebuild:
                        cmd.stop()
                        began = time.monotonic()
                        say(f"rebuilding {', '.join(rebuild)}")
                        try:
                            stack.refresh(*rebuild)
                        except DockyardError as exc:
                            # The edit broke the build or the service: say why, wait for the fix.
                            say(f"{exc}\nwatching for the next change")
                            continue
                        say(f"{', '.join(rebuild)} healthy again after {time.monotonic() - began:.1f}s")
                    if rerun:
                        cmd.start(f"{len(changes)} file(s) changed")
            finally:
                cmd.stop()
                stack.down()
        finally:
            berth.release()
    except (KeyboardInterrupt, Terminated):
        say("stopped; the stack is down")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
