"""Every ``[tool.dockyard]`` key, declared once as a typed field of :class:`Settings`."""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from dockyard.portblock import PortBlock
from dockyard.settings import checks
from dockyard.settings.readers import ServiceTables


@dataclass(frozen=True)
class Key:
    """One configuration key: how to read it, check it, and explain it.

    Declared in the annotation of a :class:`Settings` field,
    ``Annotated[<type>, Key(default, help, check)]``; ``name``, ``type`` and ``kind`` come
    from the field.
    """

    default: Any  # as written in pyproject.toml; None: computed from the other keys
    help: str
    check: Callable[[Any], str | None] | None = None  # returns the "allowed" text when bad
    secret: bool = False  # its values are secrets: an error names the key, never them
    name: str = ""
    type: Any = None  # the field's type: what the value becomes
    kind: str = ""  # how it is written: "str", "int", "float", "bool", "list", "range", "path", "table"

    @property
    def env(self) -> str:
        """The environment variable overriding the key."""
        return f"DOCKYARD_{self.name.upper()}"


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one project root.

    Every field but ``root`` and ``sources`` is a key of ``[tool.dockyard]``; ``sources``
    says where each key's value came from (``default``, ``pyproject.toml`` or its variable).
    """

    root: Path
    compose_files: Annotated[
        tuple[Path, ...], Key(["compose.yaml"], "Compose files of the stack, relative to the project root.")
    ]
    profiles: Annotated[tuple[str, ...], Key([], "Compose profiles to enable.")]
    project_prefix: Annotated[
        str, Key("dockyard", "Prefix of every compose project name (`<prefix>-<block start>`).", checks.project_prefix)
    ]
    port_range: Annotated[PortBlock, Key("20000-29999", "Host ports the berths' port blocks are cut from, `LOW-HIGH`.")]
    block_size: Annotated[
        int, Key(100, "Ports per berth; at least the number of ports the stack publishes.", checks.positive)
    ]
    max_berths: Annotated[
        int, Key(None, "Berths in the pool (default: as many blocks as fit, at most 16).", checks.positive)
    ]
    lock_dir: Annotated[
        Path,
        Key(None, "Directory of berth locks and lease records (default: $TMPDIR/dockyard-<uid>); private to the user."),
    ]
    acquire_timeout: Annotated[
        float, Key(120.0, "Seconds to wait for a free berth before failing.", checks.non_negative)
    ]
    health_timeout: Annotated[float, Key(120.0, "Seconds every service has to become healthy.", checks.positive)]
    settle: Annotated[
        float,
        Key(
            2.0,
            "Seconds a service with no health check, wait strategy or published port must keep running to count "
            "as ready (per service: `settle` in `[tool.dockyard.services.NAME]` or `x-dockyard`).",
            checks.positive,
        ),
    ]
    stop_timeout: Annotated[
        int, Key(1, "Seconds a container gets to stop on `down` before it is killed.", checks.non_negative)
    ]
    artifacts_dir: Annotated[
        Path, Key(".dockyard/artifacts", "Where failure bundles are written, relative to the project root.")
    ]
    keep_on_failure: Annotated[
        bool,
        Key(
            False,
            "Leave a stack that failed to start running, and (pytest) the stack, database and berth of a "
            "session whose tests failed, for debugging.",
        ),
    ]
    skip_missing_docker: Annotated[bool, Key(False, "Skip (instead of fail) Docker tests when Docker is unavailable.")]
    base_image_arg: Annotated[
        str, Key("BASE_IMAGE", "Build argument that dockyard may point at a locally bootstrapped Debian base image.")
    ]
    runner: Annotated[
        str,
        Key(
            "auto",
            "Where tests run: `host` (services on 127.0.0.1 and host ports), `container` (attach the runner's "
            "container to the stack's networks, services by container name and port) or `auto` (detect).",
            checks.runner_place,
        ),
    ]
    engines: Annotated[
        tuple[str, ...],
        Key(
            [],
            "Docker engines berths are spread over (`unix://...`, `tcp://...`, `ssh://...`); empty: the current "
            "one (DOCKER_HOST, else the Docker context).",
            checks.engine_endpoints,
        ),
    ]
    reuse: Annotated[
        bool,
        Key(
            True,
            "Let pytest use this project's stack kept by `dockyard up` (warm reuse) instead of starting its own.",
        ),
    ]
    mask: Annotated[
        tuple[str, ...],
        Key(
            [],
            "Values masked wherever dockyard writes, beside the secrets it finds itself (URL passwords, "
            "secret-looking keys and variables, compose `secrets:` files).",
            secret=True,
        ),
    ]
    services: Annotated[
        ServiceTables,
        Key(
            {},
            'Per-service settings, `[tool.dockyard.services.NAME]`: `wait = "http://:8000/health"`, '
            '`"tcp://:5432"`, `"log:TEXT"` or `"exit:0"` for a service without a health check; `settle = SECONDS` '
            'for one that falls back to a settle time; `coverage = "HOST_DIR:/CONTAINER_DIR"`: where its Python '
            "sources are, to measure it with `coverage` on (JSON in the environment variable).",
            checks.service_tables,
        ),
    ]
    coverage: Annotated[
        bool,
        Key(
            False,
            "`dockyard run` runs the services that name a `coverage` source under coverage.py and combines "
            "their data on the host after teardown (as `--cov` does).",
        ),
    ]
    coverage_dir: Annotated[
        Path,
        Key(
            ".dockyard/coverage",
            "Where the services' combined coverage data and reports are written, relative to the project root.",
        ),
    ]
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def port_block(self, index: int) -> PortBlock:
        """The host ports of berth ``index``."""
        return self.port_range.block(index, self.block_size)

    def service(self, name: str) -> dict[str, str | float]:
        """The ``[tool.dockyard.services.NAME]`` table of service ``name`` ({} when there is none)."""
        return dict(dict(self.services).get(name, ()))

    def project_name(self, index: int) -> str:
        """Compose project of berth ``index``: unique on the host because its block is."""
        return f"{self.project_prefix}-{self.port_block(index).start}"


def _kind(hint: Any) -> str:
    """How a value of the field type ``hint`` is written in TOML."""
    kinds: dict[Any, str] = {
        str: "str",
        int: "int",
        float: "float",
        bool: "bool",
        Path: "path",
        PortBlock: "range",
        tuple[str, ...]: "list",
        tuple[Path, ...]: "list",
        ServiceTables: "table",
    }
    if hint not in kinds:
        raise TypeError(f"a [tool.dockyard] key cannot be a {hint}; it can be one of {', '.join(map(str, kinds))}")
    return kinds[hint]


def _declared() -> tuple[Key, ...]:
    hints = get_type_hints(Settings, include_extras=True)
    keys = []
    for f in fields(Settings):
        hint = hints[f.name]
        declared = [extra for extra in get_args(hint)[1:] if isinstance(extra, Key)]
        if get_origin(hint) is Annotated and declared:
            kind = get_args(hint)[0]
            keys.append(replace(declared[0], name=f.name, type=kind, kind=_kind(kind)))
    return tuple(keys)


KEYS: tuple[Key, ...] = _declared()
"""Every ``[tool.dockyard]`` key, in the order of the reference."""


def reference_markdown() -> str:
    """The config-key reference, generated from :data:`KEYS` so it cannot drift."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k in KEYS:
        default = "(computed)" if k.default is None else f"`{json.dumps(k.default)}`"
        lines.append(f"| `{k.name}` (`{k.env}`) | {k.kind} | {default} | {k.help} |")
    return "\n".join(lines)
