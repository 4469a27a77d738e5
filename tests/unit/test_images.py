"""Which base image a build names when the compose file passes no build arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.engine.images import BuildSpec, declared_default


def spec(tmp_path: Path, dockerfile: str, name: str = "Dockerfile") -> BuildSpec:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(dockerfile)
    return BuildSpec(service="web", image="web:dev", context=tmp_path, dockerfile=name, args={}, target=None)


@pytest.mark.parametrize(
    "text",
    [
        "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}\n",
        "# syntax comment\n\narg  BASE_IMAGE = debian:bookworm-slim \nFROM $BASE_IMAGE AS app\n",
        'ARG OTHER=1\nARG BASE_IMAGE="debian:bookworm-slim"\nFROM ${BASE_IMAGE}\n',
    ],
)
def test_the_default_of_the_base_image_argument_is_read_from_the_dockerfile(tmp_path: Path, text: str) -> None:
    assert declared_default(spec(tmp_path, text), "BASE_IMAGE") == "debian:bookworm-slim"


@pytest.mark.parametrize(
    "text",
    [
        "FROM debian:bookworm-slim\n",  # no argument at all
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",  # declared without a default
        "FROM scratch\nARG BASE_IMAGE=debian:bookworm-slim\n",  # a stage's argument, after FROM
    ],
)
def test_no_default_when_the_dockerfile_declares_none_before_from(tmp_path: Path, text: str) -> None:
    assert declared_default(spec(tmp_path, text), "BASE_IMAGE") is None


def test_a_dockerfile_elsewhere_in_the_context_and_a_missing_one(tmp_path: Path) -> None:
    text = "ARG BASE_IMAGE=debian:trixie-slim\nFROM ${BASE_IMAGE}\n"
    assert declared_default(spec(tmp_path, text, "docker/app.Dockerfile"), "BASE_IMAGE") == "debian:trixie-slim"
    missing = BuildSpec(service="web", image="web:dev", context=tmp_path, dockerfile="nope", args={}, target=None)
    assert declared_default(missing, "BASE_IMAGE") is None
