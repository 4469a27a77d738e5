"""The runner image of the "runner in a container" test, built once per content.

Nothing can be pulled and containers cannot reach PyPI here, so the image is Debian's Python
on the bootstrapped Debian base, the host's docker CLI, and dockyard with its test
dependencies installed on the host into a ``--target`` tree (wheels for Debian's Python 3.11)
that the build copies in. The image carries a digest of its inputs; when the engine has an
image with that digest, nothing is downloaded or built.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker.errors
from filelock import FileLock

from dockyard.engine.endpoints import sdk

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = Path(__file__).with_name("runner") / "Dockerfile"
IMAGE = "dockyard/test-runner:latest"
HASH_LABEL = "dockyard.build-hash"
PURPOSE = {"dockyard.test": "container-runner"}  # not dockyard.managed: no stack owns it, cleanup must not
PYTHON = "3.11"  # Debian bookworm's python3
WRAPPERS = {"dockyard": "dockyard", "pytest": "pytest"}  # console scripts as `python3 -m <module>`


def _docker_cli() -> Path:
    found = shutil.which("docker")
    if found is None:
        raise AssertionError("the docker CLI is not installed on this host")
    return Path(found).resolve()


def digest() -> str:
    """What the image is made of: Dockerfile, this recipe, dockyard's sources and metadata, the docker CLI."""
    h = hashlib.sha256()
    sources = sorted((REPO / "src").rglob("*.py"))
    inputs = [DOCKERFILE, Path(__file__), REPO / "pyproject.toml", *sources, _docker_cli()]
    for path in inputs:
        h.update(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path.name).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(f"{PYTHON} {platform.machine()}".encode())
    return h.hexdigest()[:16]


def _install_site(target: Path, scratch: Path) -> None:
    """dockyard and its test dependencies for Debian's Python, fetched with the host's index config."""
    # Built from a copy: a build in the checkout would leave build/ and egg-info behind in it.
    source = scratch / "dockyard"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    spec = f"{source}[test]"
    uv = shutil.which("uv")
    if uv is not None:
        command = [uv, "pip", "install", "--quiet", "--target", str(target), "--python-version", PYTHON]
        command += ["--python-platform", f"{platform.machine()}-manylinux_2_28", spec]
    elif f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON and importlib.util.find_spec("pip"):
        # pip resolves for the running interpreter: the same minor version as Debian's is enough.
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target), spec]
    else:
        raise AssertionError(
            f"installing wheels for Python {PYTHON} needs `uv` on PATH (or pip in a Python {PYTHON} environment)"
        )
    run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if run.returncode != 0:
        raise AssertionError(f"fetching the runner's wheels failed:\n{run.stderr[-2000:]}")


def _context(directory: Path, scratch: Path) -> None:
    shutil.copy2(DOCKERFILE, directory / "Dockerfile")
    shutil.copy2(_docker_cli(), directory / "docker")
    _install_site(directory / "site", scratch)
    (directory / "bin").mkdir()
    for name, module in WRAPPERS.items():
        script = directory / "bin" / name
        script.write_text(f'#!/bin/sh\nexec python3 -m {module} "$@"\n')
        script.chmod(0o755)


def _current(wanted: str) -> bool:
    try:
        labels = sdk().images.get(IMAGE).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get(HASH_LABEL) == wanted


def ensure_runner_image(base: str) -> str:
    """Build the runner image unless the engine has one of the same digest; its tag.

    Serialised host-wide, like dockyard's own builds: a second session waits and finds it built.
    """
    wanted = digest()
    if _current(wanted):
        return IMAGE
    lock = Path(tempfile.gettempdir()) / f"dockyard-tests-{os.getuid()}" / "runner-image.lock"
    lock.parent.mkdir(mode=0o700, exist_ok=True)
    with FileLock(lock):
        if _current(wanted):
            return IMAGE
        client = sdk()
        try:
            previous: str | None = client.images.get(IMAGE).id
        except docker.errors.ImageNotFound:
            previous = None
        with (
            tempfile.TemporaryDirectory(prefix="dockyard-runner-image-") as tmp,
            tempfile.TemporaryDirectory(prefix="dockyard-runner-src-") as scratch,
        ):
            _context(Path(tmp), Path(scratch))
            tail: list[str] = []
            for chunk in client.api.build(
                path=tmp,
                tag=IMAGE,
                buildargs={"BASE_IMAGE": base},
                labels={**PURPOSE, HASH_LABEL: wanted},
                rm=True,
                forcerm=True,
                decode=True,
            ):
                tail = (tail + chunk.get("stream", "").splitlines())[-15:]
                if "error" in chunk:
                    raise AssertionError("building the runner image failed:\n" + "\n".join([*tail, chunk["error"]]))
        if previous is not None and previous != client.images.get(IMAGE).id:
            # The stale build this one replaces (ours: same tag); one still used by a container
            # of a concurrent run goes next time.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(previous)
    return IMAGE
