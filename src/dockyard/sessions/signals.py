"""SIGTERM as an exception, so a process told to stop tears down what it holds, as on Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn


class Terminated(Exception):
    """SIGTERM, turned into an exception so teardown runs (as for Ctrl-C)."""


def on_sigterm(signum: int, _frame: FrameType | None) -> NoReturn:
    """The SIGTERM handler: raise :class:`Terminated` wherever the main thread is."""
    raise Terminated(signum)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated`; the previous handler is restored after."""
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
