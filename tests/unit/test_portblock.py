"""``PortBlock``: the one shape of a port block, in Python, in text and in JSON."""

from __future__ import annotations

import json

import pytest

from dockyard.pool.ports import PortBlock as FromThePool
from dockyard.portblock import PortBlock


def test_it_behaves_like_the_range_it_stands_for() -> None:
    block = PortBlock(20000, 100)

    assert list(block) == list(range(20000, 20100))
    assert len(block) == 100
    assert (block.start, block.last, block.stop) == (20000, 20099, 20100)
    assert 20000 in block
    assert 20099 in block
    assert 20100 not in block
    assert 19999 not in block
    assert "20000" not in block  # a port is an int, not its text
    assert block == PortBlock.between(20000, 20099)
    assert len({block, PortBlock.between(20000, 20099)}) == 1  # frozen: a dict key (status rows)


def test_text_and_json() -> None:
    block = PortBlock.parse(" 23000 - 23999 ")

    assert str(block) == "23000-23999"
    assert block.to_json() == [23000, 23999]
    assert json.dumps(block.to_json()) == "[23000, 23999]"  # the shape of status --json and lease records
    assert PortBlock.from_json(json.loads("[23000, 23999]")) == block
    assert PortBlock.parse(str(block)) == block


@pytest.mark.parametrize("text", ["20000:29999", "20000", "a-b", "-5-10", "30010-30000", "65000-65536", ""])
def test_text_that_is_no_block(text: str) -> None:
    with pytest.raises(ValueError, match=r"not LOW-HIGH|no port block"):
        PortBlock.parse(text)


@pytest.mark.parametrize("value", [[1], [1, 2, 3], ["1", "2"], "12", 7])
def test_json_that_is_no_block(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        PortBlock.from_json(value)  # type: ignore[arg-type]  # what a damaged record may hold


@pytest.mark.parametrize(("start", "size"), [(0, 10), (20000, 0), (65530, 10), (-1, 2)])
def test_ports_outside_1_to_65535_are_refused(start: int, size: int) -> None:
    with pytest.raises(ValueError, match="ports are 1-65535"):
        PortBlock(start, size)


def test_blocks_are_cut_from_a_range_in_order() -> None:
    pool = PortBlock.between(20000, 20249)

    assert pool.block(0, 100) == PortBlock(20000, 100)
    assert pool.block(1, 100) == PortBlock(20100, 100)
    with pytest.raises(IndexError, match="block 2 of 100 ports is outside 20000-20249"):
        pool.block(2, 100)  # 50 ports left: no whole block


def test_the_pool_speaks_of_the_same_type() -> None:
    assert FromThePool is PortBlock
