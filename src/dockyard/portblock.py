"""``PortBlock``: a contiguous run of host ports, the one shape of a port block everywhere.

It sits at the bottom of the package, beside ``errors``, because every layer speaks of port
blocks: ``settings`` cuts them from ``port_range``, ``ui`` shows them, ``pool`` leases them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_HIGHEST = 65535
_TEXT = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


@dataclass(frozen=True)
class PortBlock:
    """``size`` host ports from ``start``: a berth's block, or the range berths' blocks are cut from.

    It iterates, has a length and answers ``port in block`` like the ``range`` it stands for.
    ``str(block)`` is ``START-LAST`` (``20000-20099``), as humans read it and as
    ``port_range`` is written; JSON carries it as ``[start, last]`` (:meth:`to_json`), the
    shape of ``status --json``, ``up --json`` and the lease records.
    """

    start: int
    size: int

    def __post_init__(self) -> None:
        if not (self.start >= 1 and self.size >= 1 and self.last <= _HIGHEST):
            raise ValueError(f"no port block of {self.size} port(s) from {self.start}: ports are 1-{_HIGHEST}")

    @classmethod
    def between(cls, first: int, last: int) -> PortBlock:
        """The ports ``first`` to ``last``, both included."""
        return cls(first, last - first + 1)

    @classmethod
    def parse(cls, text: str) -> PortBlock:
        """``"LOW-HIGH"`` (spaces allowed around either number); ValueError when it is not one."""
        match = _TEXT.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not LOW-HIGH")
        return cls.between(int(match.group(1)), int(match.group(2)))

    @classmethod
    def from_json(cls, value: Sequence[int]) -> PortBlock:
        """The block :meth:`to_json` wrote: ``[start, last]``."""
        first, last = value
        if not (isinstance(first, int) and isinstance(last, int)):
            raise TypeError(f"a port block is [first, last], not {value!r}")
        return cls.between(first, last)

    def to_json(self) -> list[int]:
        """``[start, last]``, both included."""
        return [self.start, self.last]

    @property
    def stop(self) -> int:
        """The first port after the block."""
        return self.start + self.size

    @property
    def last(self) -> int:
        """The block's last port."""
        return self.stop - 1

    def block(self, index: int, size: int) -> PortBlock:
        """The ``index``-th block of ``size`` ports cut from this one; IndexError past its end."""
        if not 0 <= index < self.size // size:
            raise IndexError(f"block {index} of {size} ports is outside {self}")
        return PortBlock(self.start + index * size, size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.size

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port < self.stop

    def __str__(self) -> str:
        return f"{self.start}-{self.last}"
