"""The command codec round-trips every request a log can hold."""

import pytest
from corral.store.commands import CommandDecodeError, decode, encode
from corral.store.types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    EmptyOp,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)
from hypothesis import given
from hypothesis import strategies as st

ints = st.integers(-(1 << 63), (1 << 63) - 1)
data = st.binary(max_size=8)
puts = st.builds(PutRequest, data, data, ints, st.booleans(), st.booleans(), st.booleans())
ranges = st.builds(RangeRequest, data, data, ints, ints, st.sampled_from(SortOrder), st.sampled_from(SortTarget),
                   st.booleans(), st.booleans(), st.booleans(), ints, ints, ints, ints)  # fmt: skip
deletes = st.builds(DeleteRangeRequest, data, data, st.booleans())


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    target = draw(st.sampled_from(CompareTarget))
    operand = draw(data) if target is CompareTarget.VALUE else draw(ints)
    return Compare(draw(data), target, draw(st.sampled_from(CompareResult)), operand, draw(data))


txns = st.recursive(
    st.builds(TxnRequest, st.tuples(compares())),
    lambda inner: st.builds(
        TxnRequest,
        st.lists(compares(), max_size=2).map(tuple),
        st.lists(st.one_of(puts, ranges, deletes, inner, st.just(EmptyOp())), max_size=3).map(tuple),
        st.lists(st.one_of(puts, deletes, inner), max_size=3).map(tuple),
    ),
    max_leaves=6,
)


@given(st.one_of(puts, deletes, txns, st.builds(CompactionRequest, ints, st.booleans())))
def test_round_trip(command: object) -> None:
    assert decode(encode(command)) == command  # type: ignore[arg-type]


def test_every_byte_value_survives() -> None:
    every_byte = bytes(range(256))
    assert decode(encode(PutRequest(every_byte, every_byte))) == PutRequest(every_byte, every_byte)


@pytest.mark.parametrize("data", [b"", b"\x09[1]", b"\x01not json", b"\x01[77]", b"\x01[0,\"k\"]"])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(CommandDecodeError):
        decode(data)
