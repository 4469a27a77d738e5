"""GitLab's Docker executor with a ``docker:dind`` service: the engine is another host, reached over TCP.

The stand-in is a second dockerd in a network namespace of its own (``engine_in_netns``); this
process stays outside it, where the engine's loopback is out of reach, as a job container's is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from .helpers import Projects, clean_env, compose, service
from .second_engine import SecondEngine, engine_in_netns, unavailable_reason

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

BODY = "from-the-dind-stack"
# The image has perl and no other server: a tiny HTTP responder on port 80.
SERVE = (
    "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 5, ReuseAddr => 1) or die $!;"
    f' while (my $c = $s->accept) {{ <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\n{BODY}\\n"; close $c }}'
)
SERVES = ["CMD", "perl", "-MIO::Socket::INET", "-e", "IO::Socket::INET->new(PeerAddr => '127.0.0.1:80') or exit 1"]
# $$: compose would interpolate $s and $c.
WEB = compose(service("web", ports=["80"], command=["perl", "-e", SERVE.replace("$", "$$")], health=SERVES))

SESSION = """
import json, sys
import dockyard
with dockyard.running_stack(dockyard.load_settings(sys.argv[1], env={}), progress=print) as stack:
    print(json.dumps({"url": stack.url("web", 80), "block": stack.describe()["port_block"]}), flush=True)
    sys.stdin.read()  # hold the stack until told
"""


@pytest.fixture(scope="module")
def dind() -> Iterator[SecondEngine]:
    if reason := unavailable_reason():
        pytest.fail(f"a second Docker engine cannot run here: {reason}")
    with engine_in_netns() as engine:
        yield engine


def test_the_stack_is_published_on_the_engines_address(make_project: Projects, dind: SecondEngine) -> None:
    project = make_project("dind", "26500-26529", WEB)
    proc = subprocess.Popen(
        [sys.executable, "-c", SESSION, str(project.root)],
        env=clean_env(DOCKER_HOST=dind.endpoint),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # progress lines, then the JSON once the stack is healthy
            lines.append(line.rstrip("\n"))
            if line.startswith("{"):
                break
        assert lines, proc.stderr.read() if proc.stderr else ""
        assert lines[-1].startswith("{"), "\n".join(lines) + (proc.stderr.read() if proc.stderr else "")
        seen = json.loads(lines[-1])
        engine_host = urlsplit(dind.endpoint).hostname
        assert engine_host is not None
        url = urlsplit(seen["url"])
        assert url.hostname == engine_host, seen  # not 127.0.0.1: the engine's loopback is not ours
        assert url.port is not None
        assert seen["block"][0] <= url.port <= seen["block"][1]  # still the berth's block
        with urllib.request.urlopen(seen["url"], timeout=10) as response:  # noqa: S310 - our own http URL
            assert response.read().decode().strip() == BODY
        said = [line for line in lines if "runs on another host" in line]
        assert len(said) == 1, lines
        assert engine_host in said[0]
        published = dind.docker("ps", "--filter", "label=dockyard.managed=true", "--format", "{{.Ports}}")
        assert f"{engine_host}:{url.port}->80/tcp" in published
    finally:
        proc.communicate(input="", timeout=120)  # end of stdin: the stack goes down
    assert proc.returncode == 0
    assert dind.managed() == []
