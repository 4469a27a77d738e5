"""Coverage of the services without Docker: the settings, the override's lines, the hook, combining."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import coverage
import pytest

from dockyard.errors import ConfigError, DockyardError
from dockyard.sessions.coverage import collect
from dockyard.sessions.run import run
from dockyard.settings import Settings, load_settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.coverage import MOUNT, Measured, ServiceCoverage, measured_services, rc_text
from dockyard.stack.lifecycle import Lifecycle

MakeSettings = Callable[..., Settings]
CONFIG = {"services": {"web": {"image": "web:dev"}, "db": {"image": "db:dev"}}}


class FakeBerth:
    project = "sample-30000"


def _with_services(settings: Settings, text: str) -> Settings:
    with (settings.root / "pyproject.toml").open("a") as fh:
        fh.write(textwrap.dedent(text))
    return load_settings(settings.root, env={})


def _plan(settings: Settings, config: Mapping[str, Any] = CONFIG) -> ServiceCoverage:
    berth = FakeBerth()
    return ServiceCoverage(settings, ComposeModel(settings, dict(config)), berth)  # type: ignore[arg-type]


def test_a_service_names_its_host_and_container_directories(make_settings: MakeSettings) -> None:
    settings = _with_services(
        make_settings(), '[tool.dockyard.services.web]\ncoverage = "src:/app/"\n[tool.dockyard.services.db]\n'
    )
    model = ComposeModel(settings, CONFIG)
    assert measured_services(settings, model) == [Measured("web", settings.root / "src", "/app")]

    bare = _with_services(make_settings(), '[tool.dockyard.services.web]\ncoverage = "/srv"\n')
    assert measured_services(bare, ComposeModel(bare, CONFIG)) == [Measured("web", bare.root, "/srv")]


@pytest.mark.parametrize("spec", ["src", "src:app", "", "src:/a b"])
def test_a_bad_coverage_spec_names_the_service_and_the_forms(make_settings: MakeSettings, spec: str) -> None:
    settings = make_settings()
    with (settings.root / "pyproject.toml").open("a") as fh:
        fh.write(f'[tool.dockyard.services.web]\ncoverage = "{spec}"\n')
    with pytest.raises(ConfigError, match=r"\[web\] coverage must be \"HOST_DIR:/CONTAINER_DIR\""):
        load_settings(settings.root, env={})


def test_coverage_without_a_measured_service_or_of_an_unknown_one_is_an_error(make_settings: MakeSettings) -> None:
    settings = make_settings()
    with pytest.raises(ConfigError, match="no service names its sources"):
        _plan(settings)
    unknown = _with_services(settings, '[tool.dockyard.services.api]\ncoverage = "src:/app"\n')
    with pytest.raises(ConfigError, match=r"'api': names a service the compose files do not have \(db, web\)"):
        _plan(unknown)


def test_the_override_mounts_the_berth_directory_and_keeps_the_images_pythonpath(make_settings: MakeSettings) -> None:
    settings = _with_services(make_settings(), '[tool.dockyard.services.web]\ncoverage = "src:/app"\n')
    plan = _plan(settings)
    assert plan.dir == settings.root / ".dockyard/coverage/sample-30000"
    text = ComposeModel(settings, CONFIG).override(
        "sample-30000",
        settings.port_block(0),
        {"dockyard.managed": "true"},
        extra=plan.override_lines(lambda image: {"PYTHONPATH": f"/{image}"}),
    )
    web = text.split('  "web":\n')[1]
    assert f'"source": "{plan.dir}", "target": "{MOUNT}"' in web
    assert f'"COVERAGE_PROCESS_START": "{MOUNT}/web.rc"' in web
    assert f'"PYTHONPATH": "{MOUNT}/hook:/web:dev"' in web  # the hook first, then what the image sets
    assert "COVERAGE" not in text.split('  "web":\n')[0]  # db is not measured

    # The service's own compose environment wins over its image's, as Compose would have it.
    configured = {"services": {"web": {"image": "web:dev", "environment": {"PYTHONPATH": "/src"}}}}
    lines = _plan(settings, configured).override_lines(lambda image: {"PYTHONPATH": "/ignored"})
    assert f'      "PYTHONPATH": "{MOUNT}/hook:/src"' in lines["web"]
    assert f'      "PYTHONPATH": "{MOUNT}/hook"' in _plan(settings).override_lines(lambda image: {})["web"]


def test_measured_services_get_time_to_write_their_data_when_stopped(make_settings: MakeSettings) -> None:
    settings = _with_services(make_settings(stop_timeout=1), '[tool.dockyard.services.web]\ncoverage = "src:/app"\n')

    class Holder:
        coverage = _plan(settings)

    lifecycle = Lifecycle.__new__(Lifecycle)
    lifecycle.settings, lifecycle.override = settings, Holder()  # type: ignore[assignment]
    assert lifecycle.stop_timeout(["web"]) == 10
    assert lifecycle.stop_timeout([]) == 10  # all of them, web among them
    assert lifecycle.stop_timeout(["db"]) == 1


def test_the_hook_starts_coverage_and_still_runs_the_sitecustomize_it_shadows(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = _with_services(make_settings(), '[tool.dockyard.services.web]\ncoverage = "src:/x"\n')
    plan = _plan(settings)
    plan.prepare()
    app = tmp_path / "app"
    app.mkdir()
    (app / "job.py").write_text(
        "import sys\n\ndef ran():\n    return 1\n\nif len(sys.argv) > 5:\n    print('never')\nran()\n"
    )
    shadowed = tmp_path / "site"
    shadowed.mkdir()
    (shadowed / "sitecustomize.py").write_text("import os\nos.environ['SHADOWED_RAN'] = '1'\n")
    # The rc of the container, pointed at this machine's directories.
    rc = plan.dir / "web.rc"
    rc.write_text(rc_text(Measured("web", app, str(app))).replace(MOUNT, str(plan.dir)))
    env = {
        **os.environ,
        "PYTHONPATH": f"{plan.dir}/hook:{shadowed}",
        "COVERAGE_PROCESS_START": str(rc),
        "COVERAGE_FILE": str(plan.data_dir / ".coverage.web"),
    }
    code = f"import os, sys, job; print(os.environ.get('SHADOWED_RAN'), {str(plan.dir / 'hook')!r} in sys.path)"
    out = subprocess.run([sys.executable, "-c", code], cwd=app, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "False"]  # the shadowed one ran; the hook hid its directory
    (data_file,) = plan.data_files()
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    assert set(data.lines(str(app / "job.py")) or []) == {1, 3, 4, 6, 8}  # not 7, the print never reached


def test_collect_maps_container_paths_to_host_files_and_removes_the_berth_dir(make_settings: MakeSettings) -> None:
    settings = _with_services(make_settings(), '[tool.dockyard.services.web]\ncoverage = "src:/app"\n')
    source = settings.root / "src" / "svc"
    source.mkdir(parents=True)
    (source / "server.py").write_text("a = 1\nb = 2\nc = 3\n")
    plan = _plan(settings)
    plan.prepare()
    for suffix, lines in (("host1.7.1", [1]), ("host2.7.2", [3])):  # two processes, two containers
        data = coverage.CoverageData(basename=str(plan.data_dir / f".coverage.web.{suffix}"))
        data.add_lines({"/app/svc/server.py": lines})
        data.write()

    result = collect(plan)

    assert result is not None
    assert not plan.dir.exists()
    assert result.data_files == 2
    assert result.silent == ()
    combined = coverage.CoverageData(basename=str(result.data_file))
    combined.read()
    assert combined.measured_files() == {str(source / "server.py")}
    assert sorted(combined.lines(str(source / "server.py")) or []) == [1, 3]
    assert round(result.percent) == 67
    assert "src/svc/server.py" in result.report
    assert result.html.is_file()
    assert result.xml.is_file()


def test_collect_of_no_data_says_none_and_still_removes_the_dir(make_settings: MakeSettings) -> None:
    settings = _with_services(make_settings(), '[tool.dockyard.services.web]\ncoverage = "src:/app"\n')
    plan = _plan(settings)
    plan.prepare()
    assert collect(plan) is None
    assert not plan.dir.exists()


def test_cov_refuses_a_kept_stack_and_a_host_without_coverage(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    with pytest.raises(DockyardError, match="--cov needs a stack of its own") as caught:
        run(settings, ["true"], reuse=True, cov=True)
    assert caught.value.remedy == "leave out --reuse (or --cov)"

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "coverage" else real(name, *a))
    with pytest.raises(DockyardError, match=r"needs coverage\.py on the host") as missing:
        run(replace(settings, coverage=True), ["true"])
    assert "dockyard[coverage]" in (missing.value.remedy or "")
