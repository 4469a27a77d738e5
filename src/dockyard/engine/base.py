"""The base image a stack's Dockerfiles start from: pulled where a registry answers, else made.

Where nothing can be pulled, a stand-in for a Debian base (``debian:bookworm-slim`` and the
like) is bootstrapped from Debian's packages with debootstrap and ``docker import``. Its
inputs (suite, mirror, architecture, variant, the slimming rules) make a :class:`Recipe`; the
root file system of each recipe is kept as a tarball in dockyard's cache, so another checkout,
another session, or an engine whose images were removed imports it again in seconds instead
of bootstrapping it anew. debootstrap itself, when the host lacks it, is fetched from the
same Debian mirror into that cache (:mod:`dockyard.engine.debootstrap`): nothing is installed
on the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from dockyard.errors import BaseImageUnavailable, DockyardError
from dockyard.ui.progress import BUILT, Reporter

if TYPE_CHECKING:
    from docker import DockerClient

RECIPE_LABEL = "dockyard.base-recipe"
# What makes the bootstrapped tree like debian:*-slim; part of the recipe, so a change rebuilds.
DPKG_EXCLUDES = (
    "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
    "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
    "path-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n"
)
APT_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n'
    'Binary::apt::APT::Keep-Downloaded-Packages "false";\n'
)
JUNK = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")
_DPKG_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el", "s390x": "s390x"}
Step = Callable[[str], None]


def cache_dir() -> Path:
    """dockyard's cache on this host, private to the user: ``$XDG_CACHE_HOME/dockyard``."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dockyard"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def suite_of(base: str) -> str:
    """The Debian suite a base image tag names: ``debian:bookworm-slim`` -> ``bookworm``."""
    return re.sub(r"[-:].*$", "", base.split(":", 1)[-1]) if ":" in base else "bookworm"


def stand_in(base: str) -> str:
    """The tag of the bootstrapped stand-in for ``base`` (e.g. debian:bookworm-slim)."""
    return f"dockyard/debian:{suite_of(base)}-minbase"


@dataclass(frozen=True)
class Recipe:
    """What a bootstrapped base is made of; its digest keys the image and the cached tarball."""

    suite: str
    mirror: str
    arch: str
    variant: str = "minbase"

    @classmethod
    def for_base(cls, base: str) -> Recipe:
        """The recipe of the stand-in for ``base`` on this host."""
        from dockyard.engine.debootstrap import debian_mirror  # noqa: PLC0415 - only where a base is needed

        machine = platform.machine()
        return cls(suite_of(base), debian_mirror(), _DPKG_ARCH.get(machine, machine))

    @property
    def digest(self) -> str:
        """A digest of every input, the slimming rules included."""
        inputs = (self.suite, self.mirror, self.arch, self.variant, DPKG_EXCLUDES, APT_CLEAN, JUNK)
        return hashlib.sha256(repr(inputs).encode()).hexdigest()[:16]

    @property
    def archive(self) -> Path:
        """Where the root file system of this recipe is kept."""
        return cache_dir() / "base" / f"debian-{self.suite}-{self.variant}-{self.arch}-{self.digest}.tar"


def ensure_base(client: DockerClient, base: str, progress: Reporter, env: Mapping[str, str] | None = None) -> str:
    """The image to build from in place of ``base``: ``base`` itself when the engine has it or can
    pull it, otherwise its bootstrapped stand-in (made, or imported from the cache, if missing).

    A stand-in of the current recipe already on the engine is taken without asking a registry
    again: where one is firewalled rather than absent, a pull takes minutes to fail.

    ``env`` points the docker CLI (``docker import``) at ``client``'s engine (default: the current one).
    """
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    try:
        client.images.get(base)
        return base
    except docker.errors.ImageNotFound:
        pass
    tag = stand_in(base)
    with contextlib.suppress(BaseImageUnavailable):  # no mirror known: only a pull can help then
        if _recipe_on_engine(client, tag) == Recipe.for_base(base).digest:
            return tag
    try:
        progress(f"pulling base image {base}")
        client.images.pull(base)
        return base
    except docker.errors.APIError:
        pass  # no registry, or no such image there: a stand-in then
    return bootstrap_base(client, base, progress, env)


def _recipe_on_engine(client: DockerClient, tag: str) -> str | None:
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    try:
        labels: dict[str, str] = client.images.get(tag).labels or {}
    except docker.errors.ImageNotFound:
        return None
    return labels.get(RECIPE_LABEL, "")


def bootstrap_base(client: DockerClient, base: str, progress: Reporter, env: Mapping[str, str] | None = None) -> str:
    """The stand-in for ``base`` on ``client``'s engine, imported from the cache or bootstrapped.

    Host-wide once: concurrent sessions serialise on the recipe's lock in the cache, and the
    second finds the first one's image.
    """
    tag = stand_in(base)
    recipe = Recipe.for_base(base)
    if _recipe_on_engine(client, tag) == recipe.digest:
        return tag
    archive = recipe.archive
    archive.parent.mkdir(mode=0o700, exist_ok=True)
    with exclusive(archive.with_suffix(".lock"), f"{tag} is being bootstrapped by another session", progress):
        if _recipe_on_engine(client, tag) == recipe.digest:  # another session made it meanwhile
            return tag
        began = time.monotonic()

        def step(what: str) -> None:
            progress.image_started(tag, f"stand-in for {base}: {what}")

        if not archive.is_file():
            progress(f"base image {base} cannot be pulled: bootstrapping {tag} from {recipe.mirror} (once per host)")
            _bootstrap(recipe, archive, step)
        step("importing into the engine")
        _import(archive, tag, recipe, env)
        progress.image_done(tag, BUILT, time.monotonic() - began)
    return tag


def _bootstrap(recipe: Recipe, archive: Path, step: Step) -> None:
    """Bootstrap the recipe's root file system and keep it, as a tarball, at ``archive``."""
    if os.geteuid() != 0:
        raise BaseImageUnavailable(
            f"no registry answered and bootstrapping a Debian {recipe.suite} base needs root "
            "(debootstrap creates device nodes and chroots into the new tree)",
            remedy="run `sudo dockyard images` once (the base is then kept for every user of this engine)",
        )
    command, tool_env = _debootstrap_command(recipe, step)
    with tempfile.TemporaryDirectory(prefix="dockyard-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _run_debootstrap(
            [*command, f"--variant={recipe.variant}", recipe.suite, str(rootfs), recipe.mirror], tool_env, step
        )
        _slim(rootfs)
        step("packing the root file system into the cache")
        partial = archive.with_suffix(".partial")
        packed = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            capture_output=True,
            text=True,
            check=False,
        )
        if packed.returncode != 0:
            partial.unlink(missing_ok=True)
            raise DockyardError(f"packing the bootstrapped tree failed: {packed.stderr.strip()[-300:]}")
        partial.replace(archive)
    for stale in archive.parent.glob(f"debian-{recipe.suite}-*.tar"):
        if stale != archive:
            stale.unlink(missing_ok=True)  # an earlier recipe's tree: no build asks for it again


def _run_debootstrap(command: list[str], tool_env: Mapping[str, str], step: Step) -> None:
    """Run debootstrap, reporting each phase (retrieving, extracting, ...) as a step."""
    lines: list[str] = []
    phases: set[str] = set()
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **tool_env},
    ) as proc:
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above
        for line in proc.stdout:
            lines = [*lines[-19:], line.rstrip()]
            words = line.split()
            # One step per phase (Retrieving, Extracting, Configuring, ...), not one per package.
            if words[:1] == ["I:"] and len(words) > 1 and words[1] not in phases:
                phases.add(words[1])
                step(f"debootstrap: {' '.join(words[1:])}")
    if proc.returncode != 0:
        tail = "\n".join(lines)
        raise DockyardError(
            f"debootstrap of Debian {command[-3]} failed (exit {proc.returncode}):\n{tail}",
            remedy=f"check that {command[-1]} answers and the disk has ~400 MB free",
        )


def _debootstrap_command(recipe: Recipe, step: Step) -> tuple[list[str], dict[str, str]]:
    """debootstrap from the host's PATH, or the copy fetched into the cache (fetched if missing)."""
    found = shutil.which("debootstrap")
    if found is not None:
        return [found], {}
    if shutil.which("wget") is None:  # debootstrap downloads the packages with wget
        raise BaseImageUnavailable(
            "bootstrapping a Debian base needs wget, which this host lacks",
            remedy="`apt-get install wget` (or `apt-get install debootstrap`, which brings it)",
        )
    tool = cache_dir() / "tools" / f"debootstrap-{recipe.suite}"
    if not (tool / ".complete").is_file():
        from dockyard.engine.debootstrap import fetch_debootstrap  # noqa: PLC0415 - see Recipe.for_base

        step(f"fetching debootstrap from {recipe.mirror}")
        fetch_debootstrap(recipe.mirror, recipe.suite, tool)
    script = tool / "usr" / "sbin" / "debootstrap"
    return ["sh", str(script)], {"DEBOOTSTRAP_DIR": str(tool / "usr" / "share" / "debootstrap")}


def _slim(rootfs: Path) -> None:
    """Make the bootstrapped tree like debian:*-slim: no docs, no apt caches left in layers."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(DPKG_EXCLUDES)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_CLEAN)
    for junk in JUNK:
        for path in (rootfs / junk).glob("*"):
            if path.is_file() and path.name not in ("lock", "locale.alias"):
                path.unlink()
            elif path.is_dir() and path.name != "partial":
                shutil.rmtree(path)


def _import(archive: Path, tag: str, recipe: Recipe, env: Mapping[str, str] | None) -> None:
    imported = subprocess.run(
        [
            "docker",
            "import",
            "--change",
            'CMD ["bash"]',
            "--change",
            f"LABEL {RECIPE_LABEL}={recipe.digest}",
            str(archive),
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if imported.returncode != 0:
        raise DockyardError(f"docker import of {tag} failed: {imported.stderr.strip()[-300:]}")


@contextmanager
def exclusive(path: Path, busy: str, progress: Callable[[str], None]) -> Iterator[None]:
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
