"""A memo of ``docker compose config``, valid for as long as everything it read is unchanged.

Asking Compose for the effective configuration (and its version first) costs two processes,
~150 ms, on every ``up``, ``run``, shard and pytest session. The answer depends only on the
compose files, the files they pull in (``include``, ``extends``, ``env_file``), the ``.env``
file, the environment variables the files interpolate, the profiles and the Compose binary.
Each entry records exactly those inputs, and is used only while every one of them still
matches; anything unreadable or unexpected is a miss, never an error.

Entries live in the private lock directory, one file per set of compose files. What is
written is a *projection* of the configuration (``project``): only the keys dockyard reads on
the way to ``compose up`` (ports, dependencies, images and builds, networks, volumes), never a
service's environment, command or health check. A projection in which any secret value still
occurs is not written at all: a memo file is no place for a password.
The variables the files interpolate are recorded by name and a keyed digest of their value
(HMAC-SHA256 under a per-user random key beside the entries), never the value: one of them
may be the password the compose file reads from the environment.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.dirs import ensure_lock_dir
from dockyard.engine.compose_cli import compose_plugin
from dockyard.errors import LockDirError
from dockyard.settings import Settings

if TYPE_CHECKING:
    import yaml

# 2: a projection of the configuration, not the whole of it; 3: digests of the variables;
# 4: services' x-dockyard tables in the projection; 5: their health checks too.
_FORMAT = 5
_KEY_NAME = ".key"  # the digest key, in the entries' directory
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
Loader = Callable[[], tuple[tuple[int, int, int], dict[str, Any]]]
# The configuration -> what of it may be written (None: nothing may).
Projection = Callable[[dict[str, Any]], dict[str, Any] | None]


def read_yaml(text: str) -> Any:
    """``text`` as safe YAML that reads Compose's own tags (``!reset``, ``!override``) as plain values.

    Raises ValueError when ``text`` is not YAML.
    """
    # Imported here: PyYAML costs ~8 ms of import, and only a miss of the memo reads YAML.
    import yaml  # noqa: PLC0415

    try:
        return yaml.load(text, Loader=_tolerant_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


@functools.cache
def _tolerant_loader() -> type[yaml.SafeLoader]:
    import yaml  # noqa: PLC0415 - see read_yaml

    def untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_scalar(node)  # type: ignore[arg-type]  # the remaining node kind

    class TolerantLoader(yaml.SafeLoader):
        """Safe YAML that reads Compose's own tags as plain values."""

    TolerantLoader.add_multi_constructor("!", untagged)
    return TolerantLoader


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _referenced(path: Path, project_dir: Path) -> Iterator[Path]:
    """Files that ``path`` pulls into the configuration (``include``, ``extends``, ``env_file``)."""
    try:
        data = read_yaml(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict):
        return
    bases = (path.parent, project_dir)  # relative to the file or to the project: take both
    for item in _as_list(data.get("include")):
        for entry in _as_list(item.get("path") if isinstance(item, dict) else item):
            yield from (base / str(entry) for base in bases)
        if isinstance(item, dict):
            yield from (base / str(e) for e in _as_list(item.get("env_file")) for base in bases)
    for service in (data.get("services") or {}).values():
        if not isinstance(service, dict):
            continue
        extends = service.get("extends")
        if isinstance(extends, dict) and extends.get("file"):
            yield from (base / str(extends["file"]) for base in bases)
        for entry in _as_list(service.get("env_file")):
            name = entry.get("path") if isinstance(entry, dict) else entry
            yield from (base / str(name) for base in bases)


def _inputs(settings: Settings) -> dict[str, str | None]:
    """Every file the configuration may depend on, with its content digest (None: missing)."""
    project_dir = settings.compose_files[0].parent
    found: dict[str, str | None] = {}
    todo = [*settings.compose_files, project_dir / ".env", settings.root / ".env"]
    while todo:
        path = todo.pop()
        key = str(path.resolve())
        if key in found:
            continue
        found[key] = _digest(path)
        if found[key] is not None and path.suffix in (".yml", ".yaml"):
            todo += _referenced(path, project_dir)
    return found


def input_files(settings: Settings) -> list[Path]:
    """The compose files and every file they pull in (``include``, ``extends``, ``env_file``) that exists."""
    return [Path(path) for path, digest in _inputs(settings).items() if digest is not None]


def _key(folder: Path) -> bytes:
    """This user's digest key (created on first use, 0600 in the private directory)."""
    path = folder / _KEY_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    folder.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".key-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(32))
    try:
        os.link(tmp, path)  # the first writer's key wins; a racing second one reads it
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def _digests(names: Iterable[str], key: bytes) -> dict[str, str | None]:
    """Each variable's keyed digest (None: unset): equal values compare equal, none can be read back."""
    return {
        name: None if (value := os.environ.get(name)) is None else hmac.new(key, value.encode(), "sha256").hexdigest()
        for name in names
    }


def _variables(inputs: Iterable[str]) -> list[str]:
    """The variables the files interpolate, and Compose's own ``COMPOSE_*`` settings."""
    names = {name for name in os.environ if name.startswith("COMPOSE_")}
    for path in inputs:
        try:
            names.update(_VARIABLE.findall(Path(path).read_text()))
        except (OSError, UnicodeDecodeError):
            continue
    return sorted(names)


def _entry_path(settings: Settings) -> Path:
    key = json.dumps([str(settings.root), [str(p) for p in settings.compose_files], list(settings.profiles)])
    return settings.lock_dir / "config-cache" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _still_valid(entry: dict[str, Any], plugin: list[object], key: bytes) -> bool:
    inputs: dict[str, str | None] = entry["inputs"]
    return (
        entry.get("format") == _FORMAT
        and entry["plugin"] == plugin
        and all(_digest(Path(path)) == digest for path, digest in inputs.items())
        and entry["environment"] == _digests(entry["environment"], key)
        # A COMPOSE_* variable set since (COMPOSE_PROFILES, say) was not among the names above.
        and all(name in entry["environment"] for name in os.environ if name.startswith("COMPOSE_"))
    )


def _memo_key(settings: Settings) -> bytes | None:
    """The digest key, when the memo may be used at all (None: always ask Compose)."""
    if os.environ.get("DOCKYARD_CONFIG_CACHE") == "0":
        return None
    try:
        # Entries are trusted only from a directory private to this user: one planted by
        # somebody else could add a bind mount to every stack.
        ensure_lock_dir(settings.lock_dir)
        return _key(_entry_path(settings).parent)
    except (LockDirError, OSError):
        return None  # taking a berth says what is wrong with the directory; a miss costs ~150 ms


def _lookup(path: Path, plugin: list[object], key: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text())
        if _still_valid(entry, plugin, key):
            return dict(entry["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no entry, or one from another format or a torn write: ask Compose
    return None


def _store(path: Path, entry: dict[str, Any]) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".entry-")
    except OSError:
        return  # a memo that cannot be written only costs the next caller ~150 ms
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(entry, fh)
        os.replace(tmp, path)  # readers see the old entry or the new one, never half of one
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def effective_config(settings: Settings, load: Loader, project: Projection) -> tuple[dict[str, Any], bool]:
    """``load()``'s configuration, or its projection from the memo while the inputs are unchanged.

    Returns ``(config, complete)``: ``complete`` is False when ``config`` is the projection
    ``project`` made of it (the memo holds nothing else), True when it is Compose's own answer.
    """
    plugin = compose_plugin()
    key = _memo_key(settings) if plugin is not None else None  # no plugin file: cannot tell when Compose changes
    if plugin is None or key is None:
        return load()[1], True
    path = _entry_path(settings)
    if (hit := _lookup(path, plugin, key)) is not None:
        return hit, False
    inputs = _inputs(settings)  # before asking Compose, so an edit meanwhile cannot be missed
    environment = _digests(_variables(inputs), key)
    version, config = load()
    projection = project(config)
    if projection is not None:  # None: secrets in what dockyard reads; no file of dockyard's may show them
        _store(
            path,
            {
                "format": _FORMAT,
                "plugin": plugin,
                "compose_version": list(version),
                "inputs": inputs,
                "environment": environment,
                "config": projection,
            },
        )
    return config, True


def config_hashes(settings: Settings, override: str, load: Callable[[], dict[str, str]]) -> dict[str, str]:
    """``load()``'s Compose config hashes (service -> hash) with ``override``, from the memo while valid.

    A hash is a digest of a service's whole configuration, the override (ports, labels) included,
    so an entry is used only for the same override text and while every input of the
    configuration is unchanged, as for :func:`effective_config`. Compose puts the same hashes on
    every container as a label, so writing them down shows nothing new.
    """
    plugin = compose_plugin()
    key = _memo_key(settings) if plugin is not None else None
    if plugin is None or key is None:
        return load()
    path = _entry_path(settings).with_suffix(".hashes.json")
    wanted = hashlib.sha256(override.encode()).hexdigest()
    try:
        entry = json.loads(path.read_text())
        if _still_valid(entry, plugin, key) and entry.get("override") == wanted:
            return {str(k): str(v) for k, v in entry["hashes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no entry, another format or a torn write: ask Compose
    inputs = _inputs(settings)  # before asking Compose, so an edit meanwhile cannot be missed
    environment = _digests(_variables(inputs), key)
    hashes = load()
    entry = {"format": _FORMAT, "plugin": plugin, "inputs": inputs, "environment": environment}
    _store(path, {**entry, "override": wanted, "hashes": hashes})
    return hashes
