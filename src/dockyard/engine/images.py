"""Build each stack image once per content, shared by all berths, never twice at a time.

An image is labelled with a digest of what it is built from (Dockerfile, build args,
target, and the files of its context that .dockerignore lets through). A session whose
digest matches the image on the engine builds nothing; sessions that need the same new
image serialise on a per-image lock and the second finds the first one's result.

Where the base image cannot be pulled (no registry), a Debian base is bootstrapped from
Debian's packages with debootstrap and ``docker import``, and the base-image build argument
is pointed at it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, cast

import docker.errors
from docker import DockerClient
from docker.utils.build import exclude_paths, tar
from filelock import FileLock, Timeout

from dockyard.dirs import ensure_lock_dir
from dockyard.errors import BuildError, DockyardError
from dockyard.settings import Settings
from dockyard.ui.progress import BUILT, CACHED, SILENT, Reporter, as_reporter

HASH_LABEL = "dockyard.build-hash"
Progress = Callable[[str], None]


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
    digest = hashlib.sha256()
    digest.update(repr((spec.dockerfile, sorted(spec.args.items()), spec.target)).encode())
    patterns = _ignore_patterns(spec.context)
    for rel in sorted(exclude_paths(str(spec.context), patterns, dockerfile=spec.dockerfile)):
        path = spec.context / rel
        if path.is_file() and not path.is_symlink():
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _image_digest(client: DockerClient, image: str) -> str | None:
    try:
        labels: dict[str, str] = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return None
    return labels.get(HASH_LABEL, "")


def _available(client: DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
        return True
    except docker.errors.APIError:
        return False  # no registry, or no such image there: the caller decides what then


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses (DOCKYARD_DEBIAN_MIRROR wins)."""
    if mirror := os.environ.get("DOCKYARD_DEBIAN_MIRROR"):
        return mirror
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for match in re.finditer(r"(?:URIs:|^deb)\s+(\S+/debian)/?\s", path.read_text(), re.MULTILINE):
            return match.group(1)
    raise DockyardError(
        "no Debian mirror found in this host's apt sources",
        remedy="set DOCKYARD_DEBIAN_MIRROR to a Debian mirror URL",
    )


def _suite(base: str) -> str:
    return re.sub(r"[-:].*$", "", base.split(":", 1)[-1]) if ":" in base else "bookworm"


def stand_in(base: str) -> str:
    """The tag of the bootstrapped stand-in for ``base`` (e.g. debian:bookworm-slim)."""
    return f"dockyard/debian:{_suite(base)}-minbase"


def wanted_images(specs: list[BuildSpec], settings: Settings) -> list[str]:
    """Every image building ``specs`` makes or starts from, stand-ins of missing bases included."""
    bases = [base for spec in specs if (base := base_of(spec, settings))]
    return [*(spec.image for spec in specs), *bases, *map(stand_in, bases)]


def bootstrap_base(
    client: DockerClient, base: str, lock_dir: Path, progress: Progress, env: Mapping[str, str] | None = None
) -> str:
    """A local stand-in for ``base`` (e.g. debian:bookworm-slim), made with debootstrap once.

    ``env`` points the docker CLI (``docker import``) at ``client``'s engine (default: the current one).
    """
    suite = _suite(base)
    tag = stand_in(base)
    if _image_digest(client, tag) is not None:
        return tag
    with _exclusive(lock_dir / f"bootstrap-{suite}.lock", f"{tag} is being bootstrapped by another session", progress):
        if _image_digest(client, tag) is None:  # another session may have made it meanwhile
            _debootstrap(base, suite, tag, progress, env)
    return tag


def _debootstrap(base: str, suite: str, tag: str, progress: Progress, env: Mapping[str, str] | None) -> None:
    if shutil.which("debootstrap") is None:
        raise DockyardError(
            f"base image {base} cannot be pulled and debootstrap is not installed to build a stand-in",
            remedy="`apt-get install debootstrap`, or load the base image with `docker load`",
        )
    progress(f"bootstrapping {tag} from Debian packages (base image {base} cannot be pulled)")
    with tempfile.TemporaryDirectory(prefix="dockyard-rootfs-") as rootfs:
        run = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, rootfs, debian_mirror()],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            tail = "\n".join(run.stdout.splitlines()[-10:] + run.stderr.splitlines()[-10:])
            raise DockyardError(f"debootstrap {suite} failed:\n{tail}", remedy="check the Debian mirror and disk space")
        _slim(Path(rootfs))
        with subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE) as packer:
            imported = subprocess.run(
                ["docker", "import", "--change", 'CMD ["bash"]', "-", tag],
                stdin=packer.stdout,
                capture_output=True,
                text=True,
                check=False,
                env=env,
            )
        if imported.returncode != 0:
            raise DockyardError(f"docker import of {tag} failed: {imported.stderr.strip()[-300:]}")


def _slim(rootfs: Path) -> None:
    """Make the bootstrapped tree like debian:*-slim: no docs, no apt caches left in layers."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n"
    )
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Binary::apt::APT::Keep-Downloaded-Packages "false";\n'
    )
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        for path in (rootfs / junk).glob("*"):
            if path.is_file() and path.name not in ("lock", "locale.alias"):
                path.unlink()
            elif path.is_dir() and path.name != "partial":
                shutil.rmtree(path)


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


def _resolve_base(
    client: DockerClient, spec: BuildSpec, settings: Settings, progress: Progress, env: Mapping[str, str] | None
) -> BuildSpec:
    base = base_of(spec, settings)
    if not base or _available(client, base):
        return spec
    stand_in_tag = bootstrap_base(client, base, settings.lock_dir, progress, env)
    return replace(spec, args={**spec.args, settings.base_image_arg: stand_in_tag})


def _build(client: DockerClient, spec: BuildSpec, digest: str, no_cache: bool, progress: Reporter) -> None:
    progress.image_started(spec.image, spec.service)
    tail: list[str] = []
    # We make (and close) the context tarball ourselves: docker-py leaves its own open.
    with closing(tar(spec.context, exclude=_ignore_patterns(spec.context), dockerfile=(spec.dockerfile, None))) as ctx:
        chunks = list(
            client.api.build(
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
            )
        )
    for chunk in chunks:
        if "stream" in chunk:
            tail = (tail + chunk["stream"].splitlines())[-15:]
        if "error" in chunk:
            shown = "\n".join([*tail[-10:], chunk["error"].strip()])
            raise BuildError(
                f"building {spec.image} for service {spec.service} failed:\n{shown}",
                remedy=f"fix {spec.dockerfile}, then `dockyard images`",
            )


@contextmanager
def _exclusive(path: Path, busy: str, progress: Progress) -> Iterator[None]:
    """Hold the lock at ``path``, saying so when another session has it first."""
    lock = FileLock(path, mode=0o600, thread_local=False, preserve_lock_file=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"waiting: {busy}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release(force=True)


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
    result = {}
    for spec in specs:
        if spec.image in result:
            continue  # services sharing one image (web and worker, say): built or checked once
        began = time.monotonic()
        resolved = _resolve_base(client, spec, settings, progress, cli_env)
        digest = context_digest(resolved)
        if not no_cache and _image_digest(client, spec.image) == digest:
            result[spec.image] = CACHED
            progress.image_done(spec.image, CACHED, time.monotonic() - began)
            continue
        name = hashlib.sha256(spec.image.encode()).hexdigest()[:12]
        with _exclusive(
            settings.lock_dir / f"build-{name}.lock", f"{spec.image} is being built by another session", progress
        ):
            # Another session may have built it while we waited for the lock.
            if not no_cache and _image_digest(client, spec.image) == digest:
                result[spec.image] = CACHED
                progress.image_done(spec.image, CACHED, time.monotonic() - began)
                continue
            _build(client, resolved, digest, no_cache, progress)
            result[spec.image] = BUILT
            progress.image_done(spec.image, BUILT, time.monotonic() - began)
    return result


def outdated(client: DockerClient, specs: list[BuildSpec], settings: Settings) -> list[BuildSpec]:
    """The specs whose image is missing, or was built from other sources than its context holds now.

    Builds nothing: this is how a kept stack is judged before tests reuse it.
    """
    ensure_lock_dir(settings.lock_dir)
    stale = []
    for spec in specs:
        resolved = _resolve_base(client, spec, settings, SILENT, None)
        if _image_digest(client, spec.image) != context_digest(resolved):
            stale.append(spec)
    return stale
