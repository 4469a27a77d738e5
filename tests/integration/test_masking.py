"""Secrets are masked by value wherever dockyard writes, whatever key holds them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dockyard

from .helpers import IMAGE, Projects, clean_env

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

URL_PASSWORD = "hunter2-in-url"  # noqa: S105 - planted, under a key that does not look secret
ENCODED_PASSWORD = "p@ss-w0rd-enc"  # noqa: S105 - planted, URL-encoded in its URL
INTERPOLATED = "interpolated-value-7"  # from a secret-looking variable, under a plain key
FILE_SECRET = "file-secret-value-9"  # noqa: S105 - a compose `secrets:` file
MASKED = 'planted"by-mask'  # the `mask` setting's; its quote comes out JSON-escaped in inspect output
PLANTED = (URL_PASSWORD, ENCODED_PASSWORD, "p%40ss-w0rd-enc", INTERPOLATED, FILE_SECRET, MASKED, 'planted\\"by-mask')

LEAKY = f"""\
services:
  leaky:
    image: {IMAGE}
    init: true
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - >-
        echo "connecting to $$UPSTREAM as $$BACKUP with $$GREETING, $$NOTE,
        key $$(cat /run/secrets/apikey)"; exec sleep infinity
    environment:
      UPSTREAM: "redis://:{URL_PASSWORD}@cache:6379/0"
      BACKUP: "postgres://app:p%40ss-w0rd-enc@db/app"
      GREETING: "${{DOCKYARD_PLANTED_SECRET}}"
      NOTE: 'say {MASKED}'
      FAIL: "${{DOCKYARD_PLANTED_FAIL:-0}}"
    secrets: [apikey]
    healthcheck:
      test: ["CMD", "sh", "-c", "echo \\"auth failed for $$UPSTREAM and $$BACKUP\\"; exit $$FAIL"]
      interval: 1s
      retries: 2
secrets:
  apikey:
    file: ./apikey.txt
"""


def leaks(text: str) -> list[str]:
    """The planted secrets that occur in ``text``."""
    return [secret for secret in PLANTED if secret in text]


def written(root: Path) -> dict[str, str]:
    """Every file dockyard wrote under the project (bundles, locks, the config memo), by path."""
    mine = {"compose.yaml", "pyproject.toml", "apikey.txt"}
    return {
        str(p.relative_to(root)): p.read_text(errors="replace")
        for p in root.rglob("*")
        if p.is_file() and p.name not in mine and not p.name.endswith(".lock")
    }


def test_secrets_are_masked_by_value_in_everything_dockyard_prints_or_writes(
    make_project: Projects, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project("masking", "24200-24299", LEAKY, health_timeout=15, mask=[MASKED])
    (project.root / "apikey.txt").write_text(FILE_SECRET + "\n")
    monkeypatch.setenv("DOCKYARD_PLANTED_SECRET", INTERPOLATED)

    # A healthy start: its progress, `logs`, ps and --json info.
    lines: list[str] = []
    with dockyard.running_stack(project.settings, progress=lines.append) as stack:
        logged = "".join(stack.logs())
        described = json.dumps(stack.describe())
        states = repr(stack.ps())
    assert "connecting to redis://:********@cache:6379/0" in logged  # the service's own log line, masked
    assert f"key {'*' * 8}" in logged
    for name, text in {"progress": "\n".join(lines), "logs": logged, "describe": described, "ps": states}.items():
        assert leaks(text) == [], name

    # A failed start through the CLI: its output, the error, the bundle.
    failed = project.cli("up", env=clean_env(DOCKYARD_PLANTED_SECRET=INTERPOLATED, DOCKYARD_PLANTED_FAIL="1"))
    output = failed.stdout + failed.stderr
    assert failed.returncode == dockyard.ExitCode.STACK_UNHEALTHY, output
    assert "auth failed for redis://:********@cache:6379/0" in output  # the health check's output, masked
    assert leaks(output) == [], output
    files = written(project.root)
    assert any(name.endswith("leaky.inspect.json") for name in files), sorted(files)
    assert any(name.endswith("compose-config.json") for name in files), sorted(files)
    for name, text in files.items():
        assert leaks(text) == [], name
