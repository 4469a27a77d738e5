"""A shard's output reaches its log masked, line by line, while the shard still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from dockyard.shards.logs import LogPump, mask_file
from dockyard.stack.masking import MASK, Redactor, Registry

PASSWORD = 'pw"with&odd/chars-91'  # noqa: S105 - planted


def redactor() -> Redactor:
    return Redactor([PASSWORD], registry=Registry())


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling the log file the pump writes, to a deadline


def test_each_line_is_in_the_log_masked_as_soon_as_the_shard_ends_it(tmp_path: Path) -> None:
    log = tmp_path / "shard-1.log"
    read, write = os.pipe()
    pump = LogPump(os.fdopen(read, "rb"), log, redactor()).start()  # it closes its end when done
    with os.fdopen(write, "wb", buffering=0) as shard:
        shard.write(f"connecting to redis://:{PASSWORD}@cache:6379/0\n".encode())
        # The shard is still running (its end of the pipe is open): the line is there already.
        wait_until("the first line reached the log", lambda: log.read_text().endswith("\n"))
        assert log.read_text() == f"connecting to redis://:{MASK}@cache:6379/0\n"
        shard.write(f"as json {json.dumps(PASSWORD)}, encoded {quote(PASSWORD, safe='')}\n".encode())
        shard.write(f"no newline at the end {PASSWORD}".encode())
    pump.join(10)
    text = log.read_text()
    assert PASSWORD not in text
    assert json.dumps(PASSWORD)[1:-1] not in text
    assert quote(PASSWORD, safe="") not in text
    assert text.splitlines() == [
        f"connecting to redis://:{MASK}@cache:6379/0",
        f'as json "{MASK}", encoded {MASK}',
        f"no newline at the end {MASK}",
    ]


def test_a_subprocess_writing_to_the_pipe_is_logged_masked_stderr_too(tmp_path: Path) -> None:
    log = tmp_path / "shard-2.log"
    code = f"import sys; print({PASSWORD!r}); print('err', {PASSWORD!r}, file=sys.stderr)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    pump = LogPump(proc.stdout, log, redactor()).start()
    assert proc.wait(timeout=30) == 0
    pump.join(10)
    assert sorted(log.read_text().splitlines()) == sorted([MASK, f"err {MASK}"])


def test_a_finished_shards_xml_is_rewritten_masked(tmp_path: Path) -> None:
    xml = tmp_path / "shard-1.xml"
    xml.write_text(f'<testcase><failure message="saw pw&quot;with&amp;odd/chars-91">{PASSWORD}</failure></testcase>')
    mask_file(xml, redactor())
    text = xml.read_text()
    assert "chars-91" not in text
    assert text == f'<testcase><failure message="saw {MASK}">{MASK}</failure></testcase>'
    mask_file(tmp_path / "missing.xml", redactor())  # a shard that never wrote one
    assert not (tmp_path / "missing.xml").exists()
