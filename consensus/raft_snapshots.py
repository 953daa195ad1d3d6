"""What a Raft member's snapshot holds besides the state machine's data: who votes, and the members.

The driver stores and sends a snapshot as one blob: a header chunk with the membership as of the
snapshot's index, then the state machine's chunks. The header is a chunk of its own (see `snapfile`), so
an incremental snapshot writes it anew while the state machine's unchanged chunks are reused.
"""

from __future__ import annotations

import struct

import orjson

from .membership import Membership
from .raft import ConfState

_HEADER = struct.Struct(">4sI")  # magic, length of the JSON that follows
_MAGIC = b"CRSM"


def header_chunk_name(index: int) -> str:
    return f"raft-membership-{index:016x}"


def encode_header(conf: ConfState, membership: Membership) -> bytes:
    body = orjson.dumps(
        {"voters": list(conf.voters), "learners": list(conf.learners), "membership": membership.encode().decode()}
    )
    return _HEADER.pack(_MAGIC, len(body)) + body


def split(data: bytes) -> tuple[ConfState, Membership, bytes]:
    """(who votes, the members, the state machine's data) of a stored or received snapshot."""
    if len(data) < _HEADER.size:
        raise ValueError("a snapshot too short for its membership header")
    magic, length = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("a snapshot without its membership header")
    start = _HEADER.size
    doc = orjson.loads(data[start : start + length])
    conf = ConfState.of(doc["voters"], doc["learners"])
    return conf, Membership.decode(doc["membership"].encode()), data[start + length :]
