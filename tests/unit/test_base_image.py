"""The base image path without Docker: pull first, then the stand-in from the cache, then bootstrap.

The engine is a fake with the two calls the path makes (``images.get`` and ``images.pull``);
``docker import`` is recorded, not run. Real bootstraps and builds run in the integration suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from dockyard.engine import base
from dockyard.engine.base import Recipe, ensure_base, stand_in, suite_of
from dockyard.engine.images import BuildSpec, ensure_images, lanes, shared_start
from dockyard.errors import BaseImageUnavailable, ExitCode
from dockyard.settings import Settings
from dockyard.ui.progress import SILENT

MIRROR = "http://mirror.test/debian"


class FakeImages:
    """``client.images`` of an engine holding ``present`` (tag -> labels); ``registry`` can be pulled."""

    def __init__(self, present: dict[str, dict[str, str]], registry: set[str]) -> None:
        self.present = present
        self.registry = registry
        self.pulled: list[str] = []

    def get(self, tag: str) -> Any:
        if tag not in self.present:
            raise docker.errors.ImageNotFound(tag)
        return SimpleNamespace(labels=self.present[tag])

    def pull(self, tag: str) -> None:
        self.pulled.append(tag)
        if tag not in self.registry:
            raise docker.errors.APIError("no such host: registry-1.docker.io")
        self.present[tag] = {}


def engine(present: dict[str, dict[str, str]] | None = None, registry: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    return SimpleNamespace(images=FakeImages(present or {}, set(registry)))


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKYARD_DEBIAN_MIRROR", MIRROR)
    return tmp_path / "cache" / "dockyard"


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    """``docker import`` calls, recorded instead of run; the image appears on the fake engine."""
    done: list[tuple[Path, str]] = []

    def fake_import(archive: Path, tag: str, recipe: Recipe, env: object) -> None:
        done.append((archive, tag))

    monkeypatch.setattr(base, "_import", fake_import)
    return done


def test_the_base_itself_when_the_engine_has_it_or_a_registry_serves_it() -> None:
    present = engine({"debian:bookworm-slim": {}})
    assert ensure_base(present, "debian:bookworm-slim", SILENT) == "debian:bookworm-slim"
    assert present.images.pulled == []
    pullable = engine(registry={"debian:bookworm-slim"})
    assert ensure_base(pullable, "debian:bookworm-slim", SILENT) == "debian:bookworm-slim"
    assert pullable.images.pulled == ["debian:bookworm-slim"]


def test_a_stand_in_of_the_same_recipe_is_used_as_it_is(imports: list[tuple[Path, str]]) -> None:
    recipe = Recipe.for_base("debian:bookworm-slim")
    client = engine({stand_in("debian:bookworm-slim"): {base.RECIPE_LABEL: recipe.digest}})
    assert ensure_base(client, "debian:bookworm-slim", SILENT) == "dockyard/debian:bookworm-minbase"
    assert imports == []
    assert client.images.pulled == []  # made before: no registry is asked again


def test_a_cached_tree_is_imported_not_bootstrapped_again(
    imports: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = Recipe.for_base("debian:bookworm-slim")
    recipe.archive.parent.mkdir(parents=True)
    recipe.archive.write_bytes(b"a tarball")

    def no_bootstrap(*args: object) -> None:
        raise AssertionError("bootstrapped although the tree of this recipe is cached")

    monkeypatch.setattr(base, "_bootstrap", no_bootstrap)
    # An engine whose images were removed, or one with a stand-in of another recipe (mirror).
    for present in ({}, {stand_in("debian:bookworm-slim"): {base.RECIPE_LABEL: "0123456789abcdef"}}):
        assert ensure_base(engine(present), "debian:bookworm-slim", SILENT) == "dockyard/debian:bookworm-minbase"
    assert imports == [(recipe.archive, "dockyard/debian:bookworm-minbase")] * 2


def test_the_recipe_keys_the_cache_by_every_input() -> None:
    one = Recipe("bookworm", MIRROR, "amd64")
    assert one.digest == Recipe("bookworm", MIRROR, "amd64").digest
    others = [Recipe("trixie", MIRROR, "amd64"), Recipe("bookworm", "http://other/debian", "amd64")]
    others += [Recipe("bookworm", MIRROR, "arm64"), Recipe("bookworm", MIRROR, "amd64", variant="buildd")]
    assert len({one.digest, *(r.digest for r in others)}) == 5
    assert one.digest in one.archive.name
    assert (suite_of("debian:trixie-slim"), suite_of("debian:bookworm")) == ("trixie", "bookworm")


def test_without_root_the_error_names_the_missing_piece_and_the_command(
    imports: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(BaseImageUnavailable) as caught:
        ensure_base(engine(), "debian:bookworm-slim", SILENT)
    assert caught.value.exit_code == ExitCode.DOCKER_UNAVAILABLE
    assert "needs root" in caught.value.message
    assert caught.value.remedy is not None
    assert "`sudo dockyard images`" in caught.value.remedy
    assert imports == []


# -- build lanes -------------------------------------------------------------------------------


def spec(root: Path, name: str, dockerfile: str) -> BuildSpec:
    (root / f"{name}.Dockerfile").write_text(dockerfile)
    return BuildSpec(name, f"{name}:dev", root, f"{name}.Dockerfile", {"BASE_IMAGE": "debian"}, None)


RUNTIME = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n# the runtime\nRUN apt-get update \\\n && apt-get install -y python3\n"


def test_images_that_start_alike_share_a_lane_the_rest_build_side_by_side(tmp_path: Path) -> None:
    auth = spec(tmp_path, "auth", RUNTIME + "COPY auth /app\n")
    # The same steps written with other line breaks and comments: still the same start.
    backend = spec(tmp_path, "backend", RUNTIME.replace("\\\n && ", "\\\n    && ") + "# api\nCOPY api /app\n")
    db = spec(tmp_path, "db", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN apt-get install -y postgresql\n")
    plain = spec(tmp_path, "plain", "FROM scratch\nCOPY x /x\n")  # no RUN: nothing to share
    assert shared_start(auth) == shared_start(backend)
    assert lanes([auth, db, backend, plain]) == [[auth, backend], [db], [plain]]


class FakeBuilder:
    """``client.api.build`` that records which image built when, and tags it on the fake engine."""

    def __init__(self, images: FakeImages) -> None:
        self.images = images
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def build(self, *, tag: str, labels: dict[str, str], buildargs: dict[str, str], **_: object) -> Any:
        with self.lock:
            self.events.append(("start", tag))
        yield {"stream": f"Step 1/2 : FROM {buildargs['BASE_IMAGE']}\n"}
        yield {"stream": "Step 2/2 : RUN make\n"}
        with self.lock:
            self.events.append(("end", tag))
            self.images.present[tag] = labels


def test_lanes_build_side_by_side_and_each_lane_in_order(
    tmp_path: Path, make_settings: Callable[..., Settings], imports: list[tuple[Path, str]]
) -> None:
    recipe = Recipe.for_base("debian")
    client = engine({stand_in("debian"): {base.RECIPE_LABEL: recipe.digest}})
    client.api = builder = FakeBuilder(client.images)
    context = tmp_path / "context"  # apart from the lock directory and the cache in tmp_path
    context.mkdir()
    specs = [
        spec(context, "auth", RUNTIME + "COPY auth /app\n"),
        spec(context, "db", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN apt-get install -y postgresql\n"),
        spec(context, "backend", RUNTIME + "COPY api /app\n"),
    ]
    said: list[str] = []
    settings = make_settings()
    assert ensure_images(client, specs, settings, progress=said.append) == dict.fromkeys(
        ["auth:dev", "db:dev", "backend:dev"], "built"
    )
    # The backend starts after the auth image is done (its runtime layer is then cached).
    assert builder.events.index(("end", "auth:dev")) < builder.events.index(("start", "backend:dev"))
    # Built from the stand-in, each step on the image's line, and the total at the end.
    assert "image auth:dev: building (auth, step 1/2: FROM dockyard/debian:bookworm-minbase)" in said
    assert said[-1].startswith("3 of 3 images built in ")
    # A second run finds every image by its digest.
    assert set(ensure_images(client, specs, settings).values()) == {"cached"}
