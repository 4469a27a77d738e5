"""Which wait strategy each service gets, and the specs users write for them.

In order: the service's own ``wait`` (``[tool.dockyard.services.NAME]``, else ``x-dockyard``
on the service); ``exit:0`` for a one-shot that another service depends on with
``service_completed_successfully``; its health check; its published TCP ports, served by the
container itself; else a settle time of running: the service's own ``settle`` (the same two
places), else the ``settle`` setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dockyard.errors import ConfigError, DockyardError
from dockyard.settings import Settings, settle_problem
from dockyard.stack.compose import ComposeModel, Finding
from dockyard.stack.waits.exit import ExitZero
from dockyard.stack.waits.healthcheck import HealthCheck, health_test
from dockyard.stack.waits.http import Http
from dockyard.stack.waits.log import Log
from dockyard.stack.waits.ports import PortsServed
from dockyard.stack.waits.protocol import WaitStrategy
from dockyard.stack.waits.settle import SETTLE, Settle
from dockyard.stack.waits.tcp import Tcp, published_tcp

SPECS = '"http://:PORT/PATH", "tcp://:PORT", "log:TEXT" or "exit:0"'
_URL = re.compile(r"^(http|tcp)://:(\d{1,5})(/\S*)?$")


def parse(spec: str) -> WaitStrategy | None:
    """The strategy ``spec`` names (None: not a spec)."""
    if spec.startswith("log:") and spec[4:]:
        return Log(spec[4:])
    if spec == "exit:0":
        return ExitZero()
    match = _URL.match(spec)
    if match is None or not 0 < int(match[2]) < 65536:
        return None
    if match[1] == "http":
        return Http(int(match[2]), match[3] or "/")
    return None if match[3] else Tcp(int(match[2]))


def one_shots(model: ComposeModel) -> set[str]:
    """Services another one depends on with ``condition: service_completed_successfully``."""
    return {
        dep
        for svc in model.services.values()
        for dep, how in (svc.get("depends_on") or {}).items()
        if (how or {}).get("condition") == "service_completed_successfully"
    }


def wait_specs(model: ComposeModel, settings: Settings) -> dict[str, str]:
    """Service -> its ``wait`` spec, checked; ConfigError / DockyardError naming the bad one."""
    specs: dict[str, str] = {}
    for name in model.services:
        spec = model.extension(name).get("wait")
        if spec is not None:
            if not isinstance(spec, str) or parse(spec) is None:
                raise DockyardError(
                    f"x-dockyard.wait of service {name!r} in {model.locate('x-dockyard')} is {spec!r}",
                    remedy=f"write one of {SPECS}",
                )
            specs[name] = spec
    for name, _ in settings.services:
        table = settings.service(name)
        spec = table.get("wait")
        if spec is None:
            continue
        if not isinstance(spec, str) or parse(spec) is None:
            raise ConfigError("services", {name: table}, f"wait must be one of {SPECS}")
        specs[name] = spec
    return specs


def settle_times(model: ComposeModel, settings: Settings) -> dict[str, float]:
    """Service -> its own settle time in seconds (``settle`` of its table), checked."""
    times: dict[str, float] = {}
    for name in model.services:
        seconds = model.extension(name).get("settle")
        if seconds is not None:
            if (problem := settle_problem(seconds)) is not None:
                raise DockyardError(
                    f"x-dockyard.settle of service {name!r} in {model.locate('settle', seconds)}: {problem}",
                    remedy="write the seconds it must keep running, e.g. `x-dockyard: {settle: 5}`",
                )
            times[name] = float(seconds)
    for name, _ in settings.services:
        seconds = settings.service(name).get("settle")
        if seconds is not None:  # checked with the settings
            times[name] = float(seconds)
    return times


def health_tests(model: ComposeModel) -> dict[str, list[str]]:
    """Service -> its health-check test as the compose files wrote it (``CMD``/``CMD-SHELL`` form).

    The engine's copy is not always the same: Podman's Docker API splits a ``CMD`` test's
    arguments at their spaces (containers/podman#26519), so a check that passes under Docker
    fails there, whereas this copy runs the command the user wrote.
    """
    tests = {}
    for name, svc in model.services.items():  # the memo's shape holds the checks: no Compose process
        test = (svc.get("healthcheck") or {}).get("test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if isinstance(test, list) and test[:1] in (["CMD"], ["CMD-SHELL"]) and all(isinstance(t, str) for t in test):
            tests[name] = list(test)
    return tests


class Chooser:
    """Picks each service's strategy (see the module's docstring)."""

    def __init__(
        self,
        specs: Mapping[str, str] | None = None,
        one_shot: set[str] | None = None,
        *,
        settle: float = SETTLE,
        settles: Mapping[str, float] | None = None,
        tests: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.specs = dict(specs or {})
        self.one_shot = set(one_shot or ())
        self.settle = settle
        self.settles = dict(settles or {})
        self.tests = dict(tests or {})

    @classmethod
    def of(cls, model: ComposeModel, settings: Settings) -> Chooser:
        """The chooser of a project's configuration."""
        return cls(
            wait_specs(model, settings),
            one_shots(model),
            settle=settings.settle,
            settles=settle_times(model, settings),
            tests=health_tests(model),
        )

    def __call__(self, service: str, info: dict[str, Any]) -> WaitStrategy:
        """A fresh strategy for ``service``, whose container's inspect output is ``info``."""
        if service in self.specs and (configured := parse(self.specs[service])) is not None:
            return configured
        if service in self.one_shot:
            return ExitZero()
        if health_test(info):
            return HealthCheck(self.tests.get(service))
        if ports := published_tcp(info):
            return PortsServed(ports)
        return Settle(self.settles.get(service, self.settle))


def choose(service: str, info: dict[str, Any]) -> WaitStrategy:
    """The strategy of a service nothing is configured for."""
    return Chooser()(service, info)


def unwaited(model: ComposeModel, settings: Settings) -> list[Finding]:
    """Services that publish ports with neither a health check nor a wait strategy (``validate`` warns)."""
    specs = wait_specs(model, settings)
    out = []
    for name, svc in sorted((model.config.get("services") or {}).items()):
        check = svc.get("healthcheck") or {}
        has_check = bool(check.get("test")) and not check.get("disable") and check.get("test") != ["NONE"]
        ports = [int(p["target"]) for p in svc.get("ports") or [] if p.get("protocol", "tcp") == "tcp"]
        if ports and not has_check and name not in specs and name not in one_shots(model):
            out.append(
                Finding(
                    name,
                    f"publishes {', '.join(map(str, ports))} with no health check or wait strategy: dockyard waits "
                    f"until the container serves the port(s), not until the service is ready; add a healthcheck, "
                    f'`x-dockyard: {{wait: "tcp://:{ports[0]}"}}` or [tool.dockyard.services.{name}] wait',
                    model.locate(f"{name}:"),
                )
            )
    return out
