"""The CI templates in ci/ parse, fan the shards out, and run only commands the README documents."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.cli.tasks import namespace

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GITHUB = ROOT / "ci" / "github-actions.yml"
GITLAB = ROOT / "ci" / "gitlab-ci.yml"
TEMPLATES = sorted((ROOT / "ci").glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


# -- what the templates run -------------------------------------------------------------------


def shell_lines(data: dict[str, Any]) -> Iterator[str]:
    """Every shell line of a template: GitHub steps' `run`, GitLab jobs' scripts."""
    for job in (data.get("jobs") or data).values():
        if not isinstance(job, dict):
            continue
        scripts = [step.get("run", "") for step in job.get("steps", [])]
        scripts += [line for key in ("before_script", "script", "after_script") for line in job.get(key, [])]
        for script in scripts:
            yield from script.splitlines()


def commands(line: str) -> Iterator[list[str]]:
    """The `nox` and `dockyard` commands of one shell line, as words from `nox`/`dockyard` on."""
    for part in re.split(r"&&|\|\||;|\|", line):
        words = shlex.split(part, comments=True)
        if words[:1] and words[0].startswith("/"):  # a venv's own script: /opt/ci/bin/nox
            words[0] = Path(words[0]).name
        if len(words) > 2 and words[1] == "-m" and Path(words[0]).name.startswith("python"):
            words = words[2:]  # python -m nox
        if words[:1] in (["nox"], ["dockyard"]):
            yield words


def ci_commands() -> list[tuple[str, list[str]]]:
    """(template, command words) of every nox/dockyard command in ci/."""
    return [(path.name, words) for path in TEMPLATES for line in shell_lines(load(path)) for words in commands(line)]


def options(words: list[str]) -> tuple[str, set[str]]:
    """``(what, --options)``: the session (``nox -s X -- OPTS``) or task (``dockyard T OPTS -- ...``)."""
    if words[0] == "nox":
        before, _, after = " ".join(words[1:]).partition(" -- ")
        session = re.search(r"(?:-s|--session|--sessions)\s+(\S+)", before)
        return (session.group(1) if session else ""), set(re.findall(r"--[a-z][a-z-]*", after))
    task, *rest = words[1:]
    rest = rest[: rest.index("--")] if "--" in rest else rest
    return task, {w.split("=")[0] for w in rest if w.startswith("--")}


# -- what the README documents ----------------------------------------------------------------


def readme_table(heading: str) -> dict[str, str]:
    """First-column name -> whole row, of the table under ``## heading`` in the README."""
    section = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*`([a-z][a-z0-9-]*)", line)
        if match:
            rows[match.group(1)] = line
    return rows


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_template_parses(path: Path) -> None:
    assert list(shell_lines(load(path))), f"{path.name} runs nothing"


def test_the_templates_run_commands_at_all() -> None:
    found = {(name, words[0]) for name, words in ci_commands()}
    assert found >= {("github-actions.yml", "nox"), ("github-actions.yml", "dockyard"), ("gitlab-ci.yml", "nox")}


def test_every_command_the_templates_run_is_documented_in_the_readme() -> None:
    sessions, tasks = readme_table("Nox sessions"), readme_table("Commands")
    assert {"e2e-parallel", "junit-merge"} <= set(sessions) | set(tasks)
    for name, words in ci_commands():
        what, used = options(words)
        if words[0] == "nox" and not what:  # bare `nox`: the default sessions
            assert "`nox` alone runs" in README.read_text()
            continue
        rows = sessions if words[0] == "nox" else tasks
        assert what in rows, f"{name}: `{shlex.join(words)}`: {what!r} is not in the README's table"
        undocumented = sorted(o for o in used if o not in rows[what])
        assert not undocumented, f"{name}: `{shlex.join(words)}`: options {undocumented} not in README: {rows[what]}"


def test_github_fans_shards_out_uploads_failures_and_publishes_one_report() -> None:
    jobs = load(GITHUB)["jobs"]
    shards = jobs["e2e"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    runs = [step.get("run", "") for step in jobs["e2e"]["steps"]]
    assert any("e2e-parallel -- --shard ${{ matrix.shard }}/${{ strategy.job-total }}" in r for r in runs)
    uploads = {step["with"]["name"]: step for step in jobs["e2e"]["steps"] if "upload-artifact" in step.get("uses", "")}
    bundles = uploads["dockyard-artifacts-shard-${{ matrix.shard }}"]
    assert bundles["if"] == "failure()"
    assert ".dockyard/artifacts" in bundles["with"]["path"]
    assert uploads["junit-shard-${{ matrix.shard }}"]["with"]["path"] == ".dockyard/junit.xml"
    report = jobs["junit"]
    assert report["needs"] == "e2e"
    assert "cancelled()" in report["if"]  # runs when a shard failed, which is when it matters
    steps = report["steps"]
    download = next(s for s in steps if "download-artifact" in s.get("uses", ""))
    assert download["with"]["pattern"] == "junit-shard-*"
    assert any(s.get("run", "").startswith("dockyard junit-merge") for s in steps)


def test_gitlab_runs_copies_against_docker_in_docker() -> None:
    job = load(GITLAB)["e2e"]
    assert job["parallel"] >= 2
    assert any(str(s.get("name", s) if isinstance(s, dict) else s).startswith("docker:") for s in job["services"])
    assert "dind" in str(job["services"])
    assert job["variables"]["DOCKER_HOST"] == "tcp://docker:2375"
    assert any('--shard "${CI_NODE_INDEX}/${CI_NODE_TOTAL}"' in line for line in job["script"])
    assert job["artifacts"]["reports"]["junit"]


def test_what_the_readme_documents_exists() -> None:
    """Closes the loop: CI -> README (above) -> the real sessions and tasks."""
    noxfile = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = set()
    for node in noxfile.body:
        decorators = [d for d in getattr(node, "decorator_list", []) if "nox.session" in ast.unparse(d)]
        for decorator in decorators:  # @nox.session, or @nox.session(name="e2e-parallel")
            names = [k.value for k in getattr(decorator, "keywords", []) if k.arg == "name"]
            sessions.add(ast.literal_eval(names[0]) if names else getattr(node, "name", ""))
    assert set(readme_table("Nox sessions")) <= sessions
    assert set(readme_table("Commands")) <= set(namespace.task_names)
    merge = namespace.tasks["junit-merge"]
    assert all(f"--{name}" in readme_table("Commands")["junit-merge"] for name in merge.help)
