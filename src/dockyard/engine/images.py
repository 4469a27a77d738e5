"""Build each stack image once per content, shared by all berths, never twice at a time.

An image is labelled with a digest of what it is built from (Dockerfile, build args,
target, and the files of its context that .dockerignore lets through). A session whose
digest matches the image on the engine builds nothing; sessions that need the same new
image serialise on a per-image lock and the second finds the first one's result.

Independent images build at the same time (as many as the host has cores); images whose
Dockerfiles begin with the same steps on the same base build one after the other, so the
second finds the first one's layers in the builder's cache instead of repeating them. Where
the base image cannot be pulled, the base-image build argument is pointed at a stand-in
(:mod:`dockyard.engine.base`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from dockyard.dirs import ensure_lock_dir
from dockyard.engine.base import ensure_base, exclusive, stand_in
from dockyard.errors import BuildError
from dockyard.settings import Settings
from dockyard.ui.progress import BUILT, CACHED, SILENT, Reporter, as_reporter

if TYPE_CHECKING:
    from docker import DockerClient

HASH_LABEL = "dockyard.build-hash"
Progress = Callable[[str], None]
_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")


@dataclass(frozen=True)
class BuildSpec:
    """One service image that dockyard builds once and shares between berths."""

    service: str
    image: str
    context: Path
    dockerfile: str
    args: Mapping[str, str]
    target: str | None


def _ignore_patterns(context: Path) -> list[str]:
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return []
    return [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def context_digest(spec: BuildSpec) -> str:
    """Digest of everything the build of ``spec`` depends on."""
    from docker.utils.build import exclude_paths  # noqa: PLC0415 - docker-py (~200 ms) only where needed

    digest = hashlib.sha256()
    digest.update(repr((spec.dockerfile, sorted(spec.args.items()), spec.target)).encode())
    patterns = _ignore_patterns(spec.context)
    for rel in sorted(exclude_paths(str(spec.context), patterns, dockerfile=spec.dockerfile)):
        path = spec.context / rel
        if path.is_file() and not path.is_symlink():
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _image_digest(client: DockerClient, image: str) -> str | None:
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    try:
        labels: dict[str, str] = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return None
    return labels.get(HASH_LABEL, "")


def declared_default(spec: BuildSpec, arg: str) -> str | None:
    """The default of ``ARG <arg>=...`` before the first ``FROM`` of the spec's Dockerfile, if any.

    So a compose file with a plain ``build: .`` (no ``args:``) still gets the bootstrapped base:
    the Dockerfile alone says which argument names the base image.
    """
    try:
        text = (spec.context / spec.dockerfile).read_text()
    except OSError:  # a remote context or a generated Dockerfile: nothing to read here
        return None
    for line in text.splitlines():
        if re.match(r"\s*FROM\s", line, re.IGNORECASE):
            break  # an ARG after FROM belongs to a stage, not to the base image
        match = re.fullmatch(rf"\s*ARG\s+{re.escape(arg)}\s*=\s*(\S+)\s*", line, re.IGNORECASE)
        if match:
            return match.group(1).strip("\"'") or None
    return None


def base_of(spec: BuildSpec, settings: Settings) -> str | None:
    """The base image ``spec`` builds from, as far as dockyard may stand in for it (or None)."""
    return spec.args.get(settings.base_image_arg) or declared_default(spec, settings.base_image_arg)


def wanted_images(specs: list[BuildSpec], settings: Settings) -> list[str]:
    """Every image building ``specs`` makes or starts from, stand-ins of missing bases included."""
    bases = [base for spec in specs if (base := base_of(spec, settings))]
    return [*(spec.image for spec in specs), *bases, *map(stand_in, bases)]


def _pointed(spec: BuildSpec, settings: Settings, chosen: Mapping[str, str]) -> BuildSpec:
    """``spec`` building from the image ``chosen`` stands for its base (the base itself, or a stand-in)."""
    base = base_of(spec, settings)
    if not base or chosen[base] == base:
        return spec
    return replace(spec, args={**spec.args, settings.base_image_arg: chosen[base]})


def _instructions(text: str) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\[ \t]*\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def shared_start(spec: BuildSpec) -> tuple[str, ...]:
    """What a build of ``spec`` shares with others: its base image and steps up to the first RUN.

    Two builds with the same start would each do that RUN (the slow part); one after the other,
    the second takes the first one's layer from the builder's cache.
    """
    try:
        steps = _instructions((spec.context / spec.dockerfile).read_text())
    except OSError:  # a remote context or a generated Dockerfile: nothing to share
        return ("image", spec.image)
    start = [*(f"ARG {k}={v}" for k, v in sorted(spec.args.items())), *steps[:1]]
    for step in steps[1:]:
        start.append(step)
        if step.upper().startswith("RUN "):
            return tuple(start)
    return ("image", spec.image)


def lanes(specs: list[BuildSpec]) -> list[list[BuildSpec]]:
    """``specs`` in build lanes: each lane one after the other, the lanes side by side."""
    grouped: dict[tuple[str, ...], list[BuildSpec]] = {}
    for spec in specs:
        grouped.setdefault(shared_start(spec), []).append(spec)
    return list(grouped.values())


def _build(client: DockerClient, spec: BuildSpec, digest: str, no_cache: bool, progress: Reporter) -> None:
    from docker.utils.build import tar  # noqa: PLC0415 - docker-py is imported only where the engine is called

    progress.image_started(spec.image, spec.service)
    tail: list[str] = []
    # We make (and close) the context tarball ourselves: docker-py leaves its own open.
    with closing(tar(spec.context, exclude=_ignore_patterns(spec.context), dockerfile=(spec.dockerfile, None))) as ctx:
        for chunk in client.api.build(
            fileobj=cast(IO[bytes], ctx),
            custom_context=True,
            dockerfile=spec.dockerfile,
            tag=spec.image,
            buildargs=dict(spec.args),
            target=spec.target,
            labels={HASH_LABEL: digest},
            rm=True,
            forcerm=True,
            nocache=no_cache,
            decode=True,
        ):
            for line in chunk.get("stream", "").splitlines():
                tail = [*tail[-14:], line]
                if step := _STEP.match(line):
                    # The row (or line) of the image says which step it is on.
                    progress.image_started(
                        spec.image, f"{spec.service}, step {step[1]}: {' '.join(step[2].split())[:60]}"
                    )
            if "error" in chunk:
                shown = "\n".join([*tail[-10:], chunk["error"].strip()])
                raise BuildError(
                    f"building {spec.image} for service {spec.service} failed:\n{shown}",
                    remedy=f"fix {spec.dockerfile}, then `dockyard images`",
                )


def _ensure_one(client: DockerClient, spec: BuildSpec, settings: Settings, no_cache: bool, progress: Reporter) -> str:
    """Build ``spec`` unless the engine has it with the same digest; "built" or "cached"."""
    began = time.monotonic()
    digest = context_digest(spec)
    if not no_cache and _image_digest(client, spec.image) == digest:
        progress.image_done(spec.image, CACHED, time.monotonic() - began)
        return CACHED
    name = hashlib.sha256(spec.image.encode()).hexdigest()[:12]
    with exclusive(
        settings.lock_dir / f"build-{name}.lock", f"{spec.image} is being built by another session", progress
    ):
        # Another session may have built it while we waited for the lock.
        if not no_cache and _image_digest(client, spec.image) == digest:
            progress.image_done(spec.image, CACHED, time.monotonic() - began)
            return CACHED
        _build(client, spec, digest, no_cache, progress)
    progress.image_done(spec.image, BUILT, time.monotonic() - began)
    return BUILT


def build_slots() -> int:
    """How many builds may run at once: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ensure_images(
    client: DockerClient,
    specs: list[BuildSpec],
    settings: Settings,
    *,
    no_cache: bool = False,
    progress: Reporter | Progress = SILENT,
    cli_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build what is missing or changed; the build status of each image ("built" or "cached").

    ``cli_env`` points the docker CLI at ``client``'s engine, when that is not the current one.
    """
    ensure_lock_dir(settings.lock_dir)
    progress = as_reporter(progress)
    began = time.monotonic()
    # Services sharing one image (web and worker, say): built or checked once.
    unique = list({spec.image: spec for spec in reversed(specs)}.values())[::-1]
    bases = dict.fromkeys(base for spec in unique if (base := base_of(spec, settings)))
    chosen = {base: ensure_base(client, base, progress, cli_env) for base in bases}
    resolved = [_pointed(spec, settings, chosen) for spec in unique]

    def lane_of(lane: list[BuildSpec]) -> dict[str, str]:
        return {spec.image: _ensure_one(client, spec, settings, no_cache, progress) for spec in lane}

    planned = lanes(resolved)
    with ThreadPoolExecutor(max_workers=max(1, min(len(planned), build_slots()))) as pool:
        futures = [pool.submit(lane_of, lane) for lane in planned]
    done: dict[str, str] = {}
    for future in futures:
        done.update(future.result())  # the first failed lane's error, after every lane has ended
    if built := sum(status == BUILT for status in done.values()):
        progress(f"{built} of {len(done)} images built in {time.monotonic() - began:.1f}s")
    return {spec.image: done[spec.image] for spec in unique}


def outdated(client: DockerClient, specs: list[BuildSpec], settings: Settings) -> list[BuildSpec]:
    """The specs whose image is missing, or was built from other sources than its context holds now.

    Builds and pulls nothing: this is how a kept stack is judged before tests reuse it.
    """
    ensure_lock_dir(settings.lock_dir)
    stale = []
    for spec in specs:
        base = base_of(spec, settings)
        chosen = {base: base if _present(client, base) else stand_in(base)} if base else {}
        if _image_digest(client, spec.image) != context_digest(_pointed(spec, settings, chosen)):
            stale.append(spec)
    return stale


def _present(client: DockerClient, image: str) -> bool:
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True
