"""Colour rules of the stderr console: NO_COLOR always wins, FORCE_COLOR forces, else plain off a terminal."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest

from dockyard.ui import console as output


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., io.StringIO]]:
    """``stderr(tty=..., **env)``: a fresh console on a fake stderr under exactly these colour variables."""

    def make(*, tty: bool, **env: str) -> io.StringIO:
        for name in ("NO_COLOR", "FORCE_COLOR", "CI", "TERM"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TERM", "xterm-256color")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        stream = Terminal() if tty else io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        output.console.cache_clear()
        return stream

    yield make
    output.console.cache_clear()


def coloured(stream: io.StringIO) -> bool:
    output.console().print("[red]x[/red]")
    return "\x1b[" in stream.getvalue()


def test_a_terminal_gets_colour(stderr: Callable[..., io.StringIO]) -> None:
    assert coloured(stderr(tty=True))


def test_no_color_wins_on_a_terminal(stderr: Callable[..., io.StringIO]) -> None:
    assert not coloured(stderr(tty=True, NO_COLOR="1"))


def test_no_color_wins_over_force_color(stderr: Callable[..., io.StringIO]) -> None:
    assert not coloured(stderr(tty=True, NO_COLOR="1", FORCE_COLOR="1"))


@pytest.mark.parametrize("env", [{"CI": "true"}, {}], ids=["CI", "pipe"])
def test_force_color_forces_where_output_would_be_plain(
    stderr: Callable[..., io.StringIO], env: dict[str, str]
) -> None:
    assert not coloured(stderr(tty=bool(env), **env))
    assert coloured(stderr(tty=bool(env), FORCE_COLOR="1", **env))


def test_a_dumb_terminal_stays_plain_even_when_forced(stderr: Callable[..., io.StringIO]) -> None:
    stream = stderr(tty=True, TERM="dumb", FORCE_COLOR="1")
    assert output.is_plain(stream)
    assert not coloured(stream)


def test_ci_and_dumb_terminals_and_pipes_stay_plain(stderr: Callable[..., io.StringIO]) -> None:
    assert output.is_plain(stderr(tty=True, CI="1"))
    assert output.is_plain(stderr(tty=True, TERM="dumb"))
    assert output.is_plain(stderr(tty=False))
    assert not output.is_plain(stderr(tty=True))
