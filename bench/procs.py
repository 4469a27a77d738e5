"""Commands run to a deadline: exit code, wall seconds, the host CPU-seconds they cost, their output.

stdout and stderr are kept apart: dockyard's ``--json`` documents are the whole of its stdout,
progress goes to stderr. A command that outlives its deadline gets SIGTERM (dockyard and
compose tear down on it), then SIGKILL.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench import ROOT, BenchError
from bench.cpu import host_busy

TERM_GRACE = 120.0  # seconds a timed-out command gets to tear down after SIGTERM


@dataclass(frozen=True)
class Proc:
    """A finished command: exit code, wall seconds, host CPU-seconds, stdout and stderr."""

    cmd: list[str]
    code: int
    seconds: float
    cpu: float
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        """The last lines of what it printed (stderr, then stdout)."""
        text = "\n".join(part.strip() for part in (self.stderr, self.stdout) if part.strip())
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> Proc:
        """Raise BenchError with the output's tail unless the command succeeded."""
        if self.code != 0:
            raise BenchError(f"`{shlex.join(self.cmd)}` exited {self.code}:\n{self.tail()}")
        return self

    def json(self) -> Any:
        """Its stdout as one JSON document (what dockyard's ``--json`` prints)."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(f"`{shlex.join(self.cmd)}` printed no JSON on stdout ({exc}):\n{self.tail()}") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL at a deadline."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Started:
    """A running command; its wall time and CPU count from just before it started."""

    cmd: list[str]
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    began: float
    busy: float

    def finish(self, timeout: float) -> Proc:
        """Wait to a deadline; stop it and raise BenchError when it does not end in time."""
        try:
            code = self.proc.wait(timeout=timeout)
            seconds = time.perf_counter() - self.began
            cpu = host_busy() - self.busy
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            raise BenchError(f"`{shlex.join(self.cmd)}` did not end within {timeout:g}s; stopped") from None
        except BaseException:  # Ctrl-C: stop the child (it tears down), then re-raise
            _stop(self.proc)
            raise
        finally:
            texts = []
            for stream in (self.out, self.err):
                stream.seek(0)
                texts.append(stream.read().decode("utf-8", "replace"))
                stream.close()
        return Proc(self.cmd, code, seconds, cpu, *texts)


def start(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Started:
    """Start ``cmd``, its output going to temporary files."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed by Started.finish
    busy, began = host_busy(), time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env or os.environ), stdout=out, stderr=err)
    return Started(list(cmd), proc, out, err, began, busy)


def run(cmd: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Proc:
    """Run ``cmd`` to a deadline."""
    return start(cmd, env=env, cwd=cwd).finish(timeout)
