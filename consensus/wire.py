"""A compact binary codec for Raft messages sent between members (no pickle, no JSON).

Layout, all integers big-endian:

- header ``>BB7QB``: codec version (1), message type code, to, frm, term, log_term, index, commit,
  reject_hint, reject (0 or 1);
- context: u32 length + bytes;
- entries: u32 count, then per entry ``>QQBI`` (term, index, entry type code, data length) + data;
- snapshot: u8 flag (0 absent, 1 present); if present ``>QQ`` (meta index, term), u32 voter count +
  u64 ids, u32 learner count + u64 ids, u32 data length + data.

Type codes come from explicit tables below, never from enum order, so reordering or extending the enums
cannot silently change the wire. A decoder meeting a version it does not know rejects the message.
"""

from __future__ import annotations

import struct

from corral.consensus.raft.types import ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMeta

VERSION = 1

# Stable wire codes. Append new members with new codes; never reuse or renumber one.
MESSAGE_TYPE_CODES: dict[MessageType, int] = {
    MessageType.HUP: 1,
    MessageType.BEAT: 2,
    MessageType.PROP: 3,
    MessageType.SNAP_STATUS: 4,
    MessageType.UNREACHABLE: 5,
    MessageType.CHECK_QUORUM: 6,
    MessageType.APP: 7,
    MessageType.APP_RESP: 8,
    MessageType.VOTE: 9,
    MessageType.VOTE_RESP: 10,
    MessageType.PRE_VOTE: 11,
    MessageType.PRE_VOTE_RESP: 12,
    MessageType.HEARTBEAT: 13,
    MessageType.HEARTBEAT_RESP: 14,
    MessageType.SNAP: 15,
    MessageType.TRANSFER_LEADER: 16,
    MessageType.TIMEOUT_NOW: 17,
    MessageType.READ_INDEX: 18,
    MessageType.READ_INDEX_RESP: 19,
}
ENTRY_TYPE_CODES: dict[EntryType, int] = {EntryType.NORMAL: 0, EntryType.CONF_CHANGE: 1}

_MESSAGE_TYPES: dict[int, MessageType] = {code: t for t, code in MESSAGE_TYPE_CODES.items()}
_ENTRY_TYPES: dict[int, EntryType] = {code: t for t, code in ENTRY_TYPE_CODES.items()}
assert len(_MESSAGE_TYPES) == len(MessageType) and len(_ENTRY_TYPES) == len(EntryType)

_HEADER = struct.Struct(">BB7QB")
_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_ENTRY = struct.Struct(">QQBI")
_SNAP_META = struct.Struct(">QQ")
_NO_CONTEXT = _U32.pack(0)
_NO_SNAPSHOT = _U8.pack(0)
_HAS_SNAPSHOT = _U8.pack(1)


class MessageDecodeError(ValueError):
    """The bytes are not a message this codec version can read (truncated, corrupt or foreign)."""


def encode_message(m: Message) -> bytes:
    """Encode one message; raises ValueError if a field does not fit its wire type (e.g. a negative id)."""
    try:
        parts: list[bytes] = [
            _HEADER.pack(
                VERSION,
                MESSAGE_TYPE_CODES[m.type],
                m.to,
                m.frm,
                m.term,
                m.log_term,
                m.index,
                m.commit,
                m.reject_hint,
                1 if m.reject else 0,
            )
        ]
        if m.context:
            parts.append(_U32.pack(len(m.context)))
            parts.append(m.context)
        else:
            parts.append(_NO_CONTEXT)
        entries = m.entries
        parts.append(_U32.pack(len(entries)))
        pack_entry = _ENTRY.pack
        append = parts.append
        for e in entries:
            append(pack_entry(e.term, e.index, ENTRY_TYPE_CODES[e.type], len(e.data)))
            if e.data:
                append(e.data)
        snap = m.snapshot
        if snap is None:
            parts.append(_NO_SNAPSHOT)
        else:
            cs = snap.meta.conf_state
            parts.append(_HAS_SNAPSHOT)
            parts.append(_SNAP_META.pack(snap.meta.index, snap.meta.term))
            parts.append(_pack_ids(cs.voters))
            parts.append(_pack_ids(cs.learners))
            parts.append(_U32.pack(len(snap.data)))
            parts.append(snap.data)
    except (struct.error, KeyError, TypeError) as exc:
        raise ValueError(f"cannot encode {m.type}: {exc}") from exc
    return b"".join(parts)


def _pack_ids(ids: tuple[int, ...]) -> bytes:
    return struct.pack(f">I{len(ids)}Q", len(ids), *ids)


class _Reader:
    """A bounds-checked cursor over a buffer; every read past the end raises MessageDecodeError."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)

    def need(self, n: int) -> None:
        if self.end - self.pos < n:
            raise MessageDecodeError(
                f"truncated message: need {n} bytes at offset {self.pos}, have {self.end - self.pos}"
            )

    def unpack(self, st: struct.Struct) -> tuple[int, ...]:
        self.need(st.size)
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def u32(self) -> int:
        self.need(4)
        value: int = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return value

    def take(self, n: int) -> bytes:
        self.need(n)
        start = self.pos
        self.pos += n
        return bytes(self.buf[start : self.pos])

    def ids(self) -> tuple[int, ...]:
        count = self.u32()
        self.need(count * 8)
        ids = struct.unpack_from(f">{count}Q", self.buf, self.pos)
        self.pos += count * 8
        return ids


def decode_message(data: bytes | memoryview) -> Message:
    """Decode one message; raises MessageDecodeError (and nothing else) for any malformed input."""
    try:
        return _decode(_Reader(data))
    except MessageDecodeError:
        raise
    except (struct.error, ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        # ConfState validation (unsorted, overlapping ids) and anything the explicit checks missed.
        raise MessageDecodeError(f"malformed message: {exc}") from exc


def _decode(r: _Reader) -> Message:
    if r.end == 0:
        raise MessageDecodeError("empty message")
    if r.buf[0] != VERSION:
        raise MessageDecodeError(f"unknown codec version {r.buf[0]}")
    _, type_code, to, frm, term, log_term, index, commit, reject_hint, reject = r.unpack(_HEADER)
    mtype = _MESSAGE_TYPES.get(type_code)
    if mtype is None:
        raise MessageDecodeError(f"unknown message type code {type_code}")
    if reject > 1:
        raise MessageDecodeError(f"bad reject flag {reject}")
    context = r.take(r.u32())

    count = r.u32()
    r.need(count * _ENTRY.size)  # cheap sanity check before looping on a corrupt count
    entries: list[Entry] = []
    append = entries.append
    unpack_entry = _ENTRY.unpack_from
    entry_types = _ENTRY_TYPES
    buf, end = r.buf, r.end
    pos = r.pos
    for _ in range(count):
        if end - pos < _ENTRY.size:
            raise MessageDecodeError(f"truncated entry header at offset {pos}")
        e_term, e_index, e_type, size = unpack_entry(buf, pos)
        pos += _ENTRY.size
        etype = entry_types.get(e_type)
        if etype is None:
            raise MessageDecodeError(f"unknown entry type code {e_type}")
        if end - pos < size:
            raise MessageDecodeError(f"truncated entry data at offset {pos}")
        append(Entry(e_term, e_index, bytes(buf[pos : pos + size]), etype))
        pos += size
    r.pos = pos

    (flag,) = r.unpack(_U8)
    snapshot: Snapshot | None
    if flag == 0:
        snapshot = None
    elif flag == 1:
        s_index, s_term = r.unpack(_SNAP_META)
        voters = r.ids()
        learners = r.ids()
        conf_state = ConfState(voters, learners)
        snapshot = Snapshot(SnapshotMeta(s_index, s_term, conf_state), r.take(r.u32()))
    else:
        raise MessageDecodeError(f"bad snapshot flag {flag}")
    if r.pos != r.end:
        raise MessageDecodeError(f"{r.end - r.pos} trailing bytes after message")
    return Message(
        type=mtype,
        to=to,
        frm=frm,
        term=term,
        log_term=log_term,
        index=index,
        entries=tuple(entries),
        commit=commit,
        reject=bool(reject),
        reject_hint=reject_hint,
        snapshot=snapshot,
        context=context,
    )
