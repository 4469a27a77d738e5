"""The `dockyard` program: its own help, usage errors that exit 2 with a suggestion, `-- ARGS`, exit codes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from invoke.context import Context

from dockyard.cli import tasks
from dockyard.cli.app import OPTIONS, USAGE_ERROR, DockyardProgram
from dockyard.cli.early import plainly_down, plainly_run, plainly_up
from dockyard.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
PYTEST_CODES = range(1, 6)  # tests failed, interrupted, internal error, usage error, no tests collected


def dockyard(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the program on ``argv``; (exit code, stdout, stderr)."""
    program = DockyardProgram(name="dockyard", binary="dockyard", version="1.2.3", namespace=tasks.namespace)
    code = 0  # a task that returns normally
    try:
        program.run(["dockyard", *argv])
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_dockyards_tasks_and_options_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = dockyard("--help", capsys=capsys)
    assert code == 0
    flags = set(re.findall(r"--[a-z][a-z-]+", out.split("Options:")[1].split("Tasks:")[0]))
    assert flags == set(OPTIONS)
    for core in ("--pty", "--dry", "--prompt-for-sudo-password", "--write-pyc", "--config", "--core-opts"):
        assert core not in out
    listed = {line.split()[0] for line in out.split("Tasks:")[1].splitlines() if line.startswith("  ")}
    assert {"up", "down", "status", "cleanup", "validate", "run", "parallel", "junit-merge"} <= listed


def test_a_tasks_help_shows_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = dockyard("--help", "cleanup", capsys=capsys)
    assert code == 0
    assert out.startswith("Usage: dockyard cleanup [--options]\n")
    assert "--older-than" in out
    assert "core-opts" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stauts"], "no task 'stauts'; did you mean `status`?"),
        (["junit_merge"], "no task 'junit_merge'; did you mean `junit-merge`?"),
        (["status", "--jsno"], "`status` has no option '--jsno'; did you mean `--json`?"),
        (["--verison"], "no option '--verison'; did you mean `--version`?"),
        (["--help", "clenaup"], "no task 'clenaup'; did you mean `cleanup`?"),
        (["xyzzy"], "no task 'xyzzy'; `dockyard --help` lists them"),
    ],
)
def test_a_usage_error_exits_2_with_the_nearest_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = dockyard(*argv, capsys=capsys)
    assert code == USAGE_ERROR == 2
    assert err.strip() == f"dockyard: {message}"
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (["down", "--berth"], ["dockyard: `--berth` needs a value", "  -> see `dockyard --help down`"]),
        (["exec"], ["dockyard: 'exec' did not receive required positional arguments: 'service', 'command'"]),
        (["down", "--berth", "one"], ["dockyard: an option's value has the wrong type (invalid literal for int()"]),
    ],
)
def test_a_malformed_option_is_a_usage_error_too(
    argv: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = dockyard(*argv, capsys=capsys)
    assert code == USAGE_ERROR
    assert "Traceback" not in err
    for wanted, line in zip(lines, err.splitlines(), strict=False):
        assert line.startswith(wanted)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert dockyard("--version", capsys=capsys)[:2] == (0, "dockyard 1.2.3\n")


def test_shell_completion_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = dockyard("--complete", "--", "dockyard", "status", "--", capsys=capsys)
    assert code == 0
    assert out.split() == ["--all", "--json"]


def test_the_words_after_the_double_dash_keep_their_quoting(monkeypatch: pytest.MonkeyPatch) -> None:
    words = [sys.executable, "-c", "a; b", "two words"]
    # The command line invoke parsed is this process's: its words are taken as they are.
    monkeypatch.setattr("sys.argv", ["invoke", "run", "--", *words])
    assert tasks.remainder(Context(remainder=" ".join(words))) == words
    # A program run on another argv: invoke's joined remainder, split as a shell would.
    monkeypatch.setattr("sys.argv", ["pytest"])
    assert tasks.remainder(Context(remainder="x.xml 'a b.xml'")) == ["x.xml", "a b.xml"]
    assert tasks.remainder(Context()) == []


def test_exit_codes_are_distinct_and_none_is_pytests() -> None:
    codes = [int(code) for code in ExitCode]
    assert len(set(codes)) == len(codes)
    assert not set(codes) & set(PYTEST_CODES)
    assert USAGE_ERROR not in codes


def test_the_readme_documents_every_exit_code_in_one_table() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| *`?([A-Z_]*)`? *\|", readme, flags=re.MULTILINE))
    assert rows == {**{str(int(code)): code.name for code in ExitCode}, str(USAGE_ERROR): ""}


def test_the_package_metadata_pypi_and_pytest_read() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["license"] == "MIT"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]  # the first to build an SPDX license
    assert "Framework :: Pytest" in project["classifiers"]
    assert {"pytest", "docker-compose"} <= set(project["keywords"])
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    assert "dockyard contributors" in licence


_LATE_SIGINT = """
import atexit, os, signal, sys, time
print("work done")
{arm}
def late():  # a Ctrl-C while the interpreter shuts down, after the work is done
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
atexit.register(late)
"""


@pytest.mark.parametrize(
    ("arm", "code"),
    [
        ("from dockyard.cli.program import _late_sigint_ends_the_process as f; f()", -signal.SIGINT),
        ("", 0),  # what Python alone does: the KeyboardInterrupt is printed as ignored
    ],
)
def test_a_late_ctrl_c_ends_the_program_by_sigint(arm: str, code: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LATE_SIGINT.format(arm=arm)], capture_output=True, text=True, check=False, timeout=30
    )

    assert done.returncode == code, done.stderr
    assert done.stdout == "work done\n"  # flushed before the signal could end the process


def imported_by(statement: str) -> set[str]:
    """Every module a fresh interpreter imports to run ``statement`` (from ``-X importtime``)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    return {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}


def test_the_program_loads_without_pytest_or_docker_py() -> None:
    """pytest is no dependency of a plain install, and docker-py is for the commands that call the engine."""
    modules = imported_by("import dockyard.cli.program, dockyard.cli.app, dockyard.cli.tasks")
    assert "dockyard.cli.tasks" in modules
    assert {m for m in modules if m.split(".")[0] in ("pytest", "_pytest", "docker", "requests")} == set()


@pytest.mark.parametrize(
    ("args", "early"),
    [
        (["up"], True),
        (["up", "--json"], True),
        (["up", "--no-build", "--json"], True),
        (["up", "--json", "--json"], False),  # invoke's parser says what is wrong with it
        (["up", "-j"], False),  # short flags and anything else: the task forks, as before
        (["up", "--help"], False),
        (["--echo", "up"], False),
        (["down"], False),
        ([], False),
    ],
)
def test_only_a_plain_up_forks_its_keeper_before_invoke_loads(args: list[str], early: bool) -> None:
    assert plainly_up(args) is early


@pytest.mark.parametrize(
    ("args", "plain"),
    [
        (["down"], (-1, False)),
        (["down", "--all"], (-1, True)),
        (["down", "--berth", "3"], (3, False)),
        (["down", "--berth", "-1"], None),  # invoke's parser and the task decide the rest
        (["down", "--berth", "one"], None),
        (["down", "--berth"], None),
        (["down", "--all", "--berth", "3"], None),
        (["down", "-a"], None),
        (["down", "--help"], None),
        (["up"], None),
    ],
)
def test_a_plain_down_is_told_from_what_invoke_must_parse(args: list[str], plain: tuple[int, bool] | None) -> None:
    assert plainly_down(args) == plain


def console_script(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str], list[str]]:
    """`dockyard ARGS` in an empty project of its own: the process, the modules it imported, its other stderr lines."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'nothing-up-here'\n")
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKYARD_LOCK_DIR"] = str(tmp_path / "locks")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    lines = done.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    return done, imported, [line for line in lines if not line.startswith("import time:")]


def test_a_plain_down_runs_to_its_end_without_invoke(tmp_path: Path) -> None:
    """`dockyard down` shows the task's error and exit code, and never imports invoke or rich (~0.1 s)."""
    done, imported, said = console_script(tmp_path, "down")

    assert done.returncode == ExitCode.FAILURE, done.stderr
    assert said == [
        "dockyard: no stack of this project is up",
        "  -> start one with `dockyard up` (see `dockyard status`)",
    ]
    assert "dockyard.cli.early" in imported
    assert {m for m in imported if m.split(".")[0] in ("invoke", "rich")} == set()


@pytest.mark.parametrize(
    ("args", "plain"),
    [
        (["run", "--", "pytest", "-x"], (frozenset(), ["pytest", "-x"])),
        (["run", "--no-up", "--cov", "--", "true"], (frozenset({"--no-up", "--cov"}), ["true"])),
        (["run", "--reuse", "--", "sh", "-c", "a -- b"], (frozenset({"--reuse"}), ["sh", "-c", "a -- b"])),
        (["run", "--", "--"], (frozenset(), ["--"])),  # the command's own words, whatever they are
        (["run", "--"], None),  # the task says there is nothing to run
        (["run", "pytest"], None),
        (["run", "--cov", "--cov", "--", "true"], None),
        (["run", "--in", "backend", "--", "true"], None),  # options with values: invoke parses them
        (["run", "--env-file=x", "--", "true"], None),
        (["run", "-r", "--", "true"], None),
        (["run", "--help", "--", "true"], None),
        (["--echo", "run", "--", "true"], None),
        (["parallel", "--", "true"], None),
        ([], None),
    ],
)
def test_a_plain_run_is_told_from_what_invoke_must_parse(
    args: list[str], plain: tuple[frozenset[str], list[str]] | None
) -> None:
    assert plainly_run(args) == plain


def test_a_plain_run_runs_its_command_without_invoke(tmp_path: Path) -> None:
    """`dockyard run -- CMD` ends with the command's exit status, and never imports invoke."""
    command = [sys.executable, "-c", "import os, sys; sys.exit(len(os.environ['DOCKYARD_PROJECT']) and 3)"]
    done, imported, _ = console_script(tmp_path, "run", "--no-up", "--", *command)

    assert done.returncode == 3, done.stderr
    assert "dockyard.sessions.run" in imported
    assert {m for m in imported if m.split(".")[0] == "invoke"} == set()


def test_the_console_script_forks_up_s_keeper_before_importing_invoke() -> None:
    """The keeper's work starts before invoke and the task collection load (they cost ~70 ms)."""
    modules = imported_by("import dockyard.cli.program")
    assert "dockyard.cli.early" in modules
    assert {m for m in modules if m.split(".")[0] in ("invoke", "rich")} == set()


def test_the_objects_of_a_finished_command_are_left_to_the_exit() -> None:
    """The interpreter's last collection is skipped (gc.freeze): ~25 ms of every command's wall time."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['dockyard', '--version']\n"
        "from dockyard.cli.program import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('frozen', gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "frozen True", done.stdout + done.stderr
