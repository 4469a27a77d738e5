"""`dockyard run --cov` on the real engine: a Python service measured, its data combined on the host."""

from __future__ import annotations

import textwrap
from pathlib import Path

import coverage

from .helpers import IMAGE, NOTHING, Projects, clean_env, project_resources

# A service that SIGTERM ends without a handler of its own: only coverage.py's `sigterm`
# setting saves its data. /hit runs one function; /miss, never asked for, another.
SERVER = """\
import http.server


def hit():
    return b"hit"  # HIT


def miss():
    return b"miss"  # MISS


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = hit() if self.path == "/hit" else miss() if self.path == "/miss" else b"ok"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""

# python3-coverage is Debian's coverage.py (6.5), as the demo's images have it; the service
# runs as a user of its own, as theirs do. Built once per engine, then found by its digest.
DOCKERFILE = f"""\
FROM {IMAGE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-coverage \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* \\
 && useradd --system --uid 10001 --no-create-home app
COPY svc /srv/svc
USER app
CMD ["python3", "/srv/svc/server.py"]
"""

COMPOSE = """\
services:
  web:
    image: dockyard/test-coverage-web:bookworm
    build: {context: app}
    ports: ["8000"]
    init: true
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/', timeout=1)"]
      interval: 1s
      timeout: 5s
      retries: 60
"""

HIT = """\
import os, urllib.request
print(urllib.request.urlopen(f"http://{os.environ['DOCKYARD_WEB_8000']}/hit", timeout=10).read().decode())
"""


def _line(source: str, marker: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if marker in line)


def test_run_cov_measures_the_service_and_maps_its_lines_to_host_files(make_project: Projects) -> None:
    project = make_project("coverage", "27100-27129", COMPOSE)
    app = project.root / "app"
    (app / "svc").mkdir(parents=True)
    (app / "Dockerfile").write_text(DOCKERFILE)
    server = app / "svc" / "server.py"
    server.write_text(SERVER)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write(textwrap.dedent('[tool.dockyard.services.web]\ncoverage = "app:/srv"\n'))
    (project.root / "hit.py").write_text(HIT)
    name = project.settings.project_name(0)

    out = project.cli("run", "--cov", "--", "python3", "hit.py", env=clean_env(DOCKYARD_HEALTH_TIMEOUT="120"))

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hit"
    assert "dockyard: coverage of web (" in out.stderr
    assert "app/svc/server.py" in out.stderr  # the report names the host file
    data_file = project.root / ".dockyard" / "coverage" / ".coverage"
    assert "(.dockyard/coverage/.coverage)" in out.stderr  # the summary says where the data is
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    assert data.measured_files() == {str(server)}  # host paths only, no /srv left
    lines = set(data.lines(str(server)) or [])
    assert _line(SERVER, "# HIT") in lines  # the request ran it, and SIGTERM did not lose it
    assert _line(SERVER, "do_GET") + 1 in lines
    assert _line(SERVER, "# MISS") not in lines
    assert (data_file.parent / "html" / "index.html").is_file()
    xml = (data_file.parent / "coverage.xml").read_text()
    assert f"<source>{project.root}</source>" in xml
    assert 'filename="app/svc/server.py"' in xml
    assert not (data_file.parent / name).exists()  # the berth's directory went with the session
    assert project_resources(name) == NOTHING


def test_run_cov_without_a_measured_service_fails_before_starting(make_project: Projects) -> None:
    project = make_project("coverage-none", "27130-27159", COMPOSE)
    out = project.cli("run", "--cov", "--", "true")
    assert out.returncode == 78, out.stderr  # bad configuration
    assert "no service names its sources" in out.stderr
    assert not Path(project.root / ".dockyard").exists()
