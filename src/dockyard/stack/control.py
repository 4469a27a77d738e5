"""Service control of a running stack: stop, start, restart, refresh, logs, exec."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence

from dockyard.settings import Settings
from dockyard.stack.lifecycle import Lifecycle
from dockyard.stack.project import ComposeProject


class Control:
    """What a developer does to single services of a running stack."""

    def __init__(self, settings: Settings, project: ComposeProject, lifecycle: Lifecycle) -> None:
        self.settings = settings
        self.project = project
        self.lifecycle = lifecycle

    def stop(self, *services: str) -> None:
        """Stop ``services`` (they keep their state)."""
        compose = self.project.compose.compose
        timeout = self.lifecycle.stop_timeout(services)
        self.project.run("stop", lambda: compose.stop(list(services), timeout=timeout))

    def start(self, *services: str) -> None:
        """Start stopped ``services`` and wait until they are ready.

        Through the engine API, as ``up`` starts each level: `compose start` first waits for the
        services' dependencies to be healthy by the engine's own checks, which Podman without
        systemd never runs, and Docker only at the check's interval.
        """
        wanted = set(services or self.lifecycle.model.services)
        for level in self.lifecycle.model.start_levels():  # each after the ones it depends on
            if chosen := [name for name in level if name in wanted]:
                self.lifecycle.start_level(chosen)
                self.lifecycle.wait(chosen)

    def restart(self, *services: str) -> None:
        """Restart ``services`` (default all) and wait until they are ready."""
        compose = self.project.compose.compose
        timeout = self.lifecycle.stop_timeout(services)
        self.project.run("restart", lambda: compose.restart(list(services) or None, timeout=timeout))
        self.lifecycle.wait(services)

    def refresh(self, *services: str) -> None:
        """Rebuild and recreate ``services`` (the inner dev loop), then wait until they are ready."""
        self.lifecycle.build(services=services)
        compose = self.project.compose.compose
        self.project.run(
            "refresh",
            lambda: compose.up(
                list(services) or None, detach=True, no_build=True, force_recreate=True, dependencies=False, quiet=True
            ),
        )
        self.lifecycle.wait(services)

    def logs(
        self, services: Sequence[str] = (), *, follow: bool = False, tail: str | None = None, since: str | None = None
    ) -> Iterator[str]:
        """Log lines of ``services`` (default all), secrets masked."""
        args = ["--no-color"]
        if follow:
            args.append("--follow")
        if tail:
            args += ["--tail", tail]
        if since:
            args += ["--since", since]
        # Our own process rather than python-on-whales' stream: a reader that stops early
        # must not leave `docker compose logs` running behind it.
        with subprocess.Popen(
            self.project.command("logs", *args, *services),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.project.cli_env(),
        ) as proc:
            try:
                for line in proc.stdout or ():
                    yield self.project.redact(line.decode("utf-8", "replace"))
            finally:
                proc.terminate()

    def exec(self, service: str, command: Sequence[str], *, tty: bool = False) -> int:
        """Run ``command`` in ``service``'s container; its exit code."""
        args = [] if tty else ["-T"]
        return subprocess.call(
            self.project.command("exec", *args, service, *command), cwd=self.settings.root, env=self.project.cli_env()
        )
