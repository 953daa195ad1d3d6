"""Raft message codec: round trips, stable codes, and MessageDecodeError for every malformed input."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest
from corral.consensus.raft.types import ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMeta
from corral.consensus.wire import (
    ENTRY_TYPE_CODES,
    MESSAGE_TYPE_CODES,
    VERSION,
    MessageDecodeError,
    decode_message,
    encode_message,
)
from hypothesis import given, settings
from hypothesis import strategies as st

U64 = 2**64 - 1


def full_message(mtype: MessageType) -> Message:
    """A message with every field set to a distinct non-default value."""
    return Message(
        type=mtype,
        to=2,
        frm=1,
        term=7,
        log_term=6,
        index=41,
        entries=(
            Entry(6, 42, b"put k v"),
            Entry(7, 43, b""),
            Entry(7, 44, b"\x00\x00\x00\x01cc", EntryType.CONF_CHANGE),
        ),
        commit=40,
        reject=True,
        reject_hint=39,
        snapshot=Snapshot(SnapshotMeta(30, 5, ConfState.of([1, 2, 3], [4])), b"state"),
        context=b"ctx",
    )


@pytest.mark.parametrize("mtype", list(MessageType))
def test_every_message_type_round_trips(mtype: MessageType) -> None:
    for m in (Message(mtype), full_message(mtype)):
        assert decode_message(encode_message(m)) == m


def test_type_codes_are_stable_and_complete() -> None:
    # The wire codes are a compatibility promise: changing one breaks mixed-version clusters.
    assert set(MESSAGE_TYPE_CODES) == set(MessageType)
    assert len(set(MESSAGE_TYPE_CODES.values())) == len(MessageType)
    assert MESSAGE_TYPE_CODES[MessageType.APP] == 7 and MESSAGE_TYPE_CODES[MessageType.READ_INDEX_RESP] == 19
    assert ENTRY_TYPE_CODES == {EntryType.NORMAL: 0, EntryType.CONF_CHANGE: 1}
    assert encode_message(Message(MessageType.HEARTBEAT))[:2] == bytes([VERSION, 13])


def test_snapshot_variants_round_trip() -> None:
    for snap in (
        Snapshot(),
        Snapshot(SnapshotMeta(1, 1, ConfState.of([1])), b""),
        Snapshot(SnapshotMeta(U64, U64, ConfState.of(list(range(1, 100)), [200, 300])), b"x" * 100_000),
        Snapshot(SnapshotMeta(9, 2, ConfState((), (5, 6))), b"\xff" * 3),
    ):
        m = Message(MessageType.SNAP, to=3, frm=1, term=2, snapshot=snap)
        assert decode_message(encode_message(m)) == m
    # None and an empty snapshot are different values and stay different.
    assert decode_message(encode_message(Message(MessageType.SNAP))).snapshot is None


def test_big_and_empty_data_and_memoryview_input() -> None:
    big = bytes(random.Random(1).randbytes(5 * 1024 * 1024))
    m = Message(
        MessageType.APP,
        to=1,
        frm=2,
        entries=(Entry(1, 1, big), Entry(1, 2, b""), Entry(1, 3, b"a")),
        context=b"",
    )
    data = encode_message(m)
    assert decode_message(memoryview(data)) == m


def test_many_small_entries() -> None:
    entries = tuple(Entry(3, i, f"v{i}".encode()) for i in range(1, 5001))
    m = Message(MessageType.APP, to=2, frm=1, term=3, index=0, log_term=0, entries=entries, commit=10)
    assert decode_message(encode_message(m)) == m


def test_unencodable_fields_raise_value_error() -> None:
    with pytest.raises(ValueError):
        encode_message(Message(MessageType.APP, to=-1))
    with pytest.raises(ValueError):
        encode_message(Message(MessageType.APP, term=2**64))


def test_truncation_at_every_offset_raises_decode_error() -> None:
    data = encode_message(full_message(MessageType.APP))
    for cut in range(len(data)):
        with pytest.raises(MessageDecodeError):
            decode_message(data[:cut])
    with pytest.raises(MessageDecodeError):
        decode_message(data + b"\x00")  # trailing garbage


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: bytes([2]) + d[1:],  # unknown codec version
        lambda d: d[:1] + bytes([200]) + d[2:],  # unknown message type
        lambda d: d[:58] + bytes([2]) + d[59:],  # reject flag neither 0 nor 1
    ],
)
def test_bad_header_fields(mutate: Callable[[bytes], bytes]) -> None:
    data = encode_message(Message(MessageType.HEARTBEAT, to=1, frm=2, reject=True))
    with pytest.raises(MessageDecodeError):
        decode_message(mutate(data))


def test_invalid_conf_state_raises_decode_error() -> None:
    m = Message(MessageType.SNAP, snapshot=Snapshot(SnapshotMeta(1, 1, ConfState.of([1, 2])), b""))
    data = encode_message(m)
    ids_at = data.index(struct.pack(">IQQ", 2, 1, 2))
    unsorted = data[:ids_at] + struct.pack(">IQQ", 2, 2, 1) + data[ids_at + 20 :]
    with pytest.raises(MessageDecodeError):
        decode_message(unsorted)


def test_huge_counts_fail_fast() -> None:
    header = encode_message(Message(MessageType.APP))[:59]
    for tail in (
        struct.pack(">I", 0xFFFFFFFF),  # context length
        struct.pack(">II", 0, 0xFFFFFFFF),  # entry count
        struct.pack(">IIBQQI", 0, 0, 1, 1, 1, 0xFFFFFFFF),  # voter count
    ):
        with pytest.raises(MessageDecodeError):
            decode_message(header + tail)


def test_random_garbage_only_raises_decode_error() -> None:
    rng = random.Random(7)
    valid = encode_message(full_message(MessageType.APP))
    for _ in range(3000):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randrange(0, 200))
        else:  # flip bytes of a valid message: reaches deeper into the decoder
            buf = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf)
        try:
            decode_message(data)
        except MessageDecodeError:
            pass


u64 = st.integers(min_value=0, max_value=U64)
ids = st.lists(st.integers(min_value=1, max_value=U64), max_size=5, unique=True)
entries = st.builds(Entry, u64, u64, st.binary(max_size=64), st.sampled_from(list(EntryType)))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot | None:
    if draw(st.booleans()):
        return None
    members = draw(ids)
    split = draw(st.integers(min_value=0, max_value=len(members)))
    conf = ConfState.of(members[:split], members[split:])
    return Snapshot(SnapshotMeta(draw(u64), draw(u64), conf), draw(st.binary(max_size=256)))


messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)),
    to=u64,
    frm=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=8).map(tuple),
    commit=u64,
    reject=st.booleans(),
    reject_hint=u64,
    snapshot=snapshots(),
    context=st.binary(max_size=32),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip_property(m: Message) -> None:
    assert decode_message(encode_message(m)) == m


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_property(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageDecodeError:
        pass
