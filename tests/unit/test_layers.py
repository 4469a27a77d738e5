"""The layers contract in pyproject.toml holds for the package, and fails on an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--config",
            str(config),
            "--no-cache",
        ],
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_package_keeps_its_layers() -> None:
    done = _lint_imports(ROOT / "src", ROOT / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("engine/labels.py", "from dockyard.pool.berth import lock_is_held"),
        ("pool/berth.py", "from dockyard.sessions import watchdog"),
        ("errors.py", "import dockyard.ui.console"),
        # Why PortBlock lives at the bottom: ui and settings, which show and cut blocks, are below pool.
        ("ui/progress.py", "from dockyard.pool.ports import layout"),
        ("settings/keys.py", "from dockyard.pool.ports import layout"),
        ("portblock.py", "from dockyard.errors import DockyardError"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path: Path, module: str, upward: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "dockyard", src / "dockyard", ignore=shutil.ignore_patterns("__pycache__"))
    target = src / "dockyard" / module
    target.write_text(target.read_text() + f"\n{upward}  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = _lint_imports(src, tmp_path / "pyproject.toml")
    assert done.returncode != 0
    assert "BROKEN" in done.stdout or "broken" in done.stdout
