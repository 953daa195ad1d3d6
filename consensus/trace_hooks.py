"""Tracing hooks for the log, and how a proposal's trace context rides inside its log entry.

The log knows nothing of OpenTelemetry: the API layer hands it a `TraceHooks` (or None, when tracing is
off, and then the log does no tracing work at all). A trace context is opaque bytes to the log: the API
serializes the caller's span context, the log carries it beside the proposal, and reports back, with
timestamps, the stages the proposal went through on this member (its WAL append and fsync, its apply), so
the API can record them as spans whose parent is that context.

In the Raft log the context travels inside the entry itself, so a follower that forwards a proposal to
the leader (and the leader that replicates it) sends the trace along with it, and every member that
persists or applies the entry can report spans in the proposer's trace. A Raft entry's data is a 16-byte
request id (member id, then a counter) and the proposal's bytes. A traced entry sets the top bit of the
counter's first byte (a counter never gets near 2**63), then puts the context between the id and the
proposal:

    request id with 0x80 in byte 8 (16 bytes) | context length (u16) | context | data

An entry without a context is exactly the id and the data, byte for byte what it was before tracing
existed. Every member strips the context whether or not it traces itself, so members with and without
tracing apply the same bytes. The context's own bytes are versioned by whoever makes them (the API's
begin with a format version byte, as W3C's binary trace context does); this layer only carries them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

REQUEST_ID_BYTES = 16
TRACE_FLAG = 0x80  # in byte FLAG_OFFSET of the request id
FLAG_OFFSET = 8  # the first byte of the counter
MAX_CONTEXT_BYTES = 1024  # a context longer than this is not carried (W3C's tracestate stays well under)
_LENGTH = struct.Struct(">H")
_HEAD_BYTES = REQUEST_ID_BYTES + _LENGTH.size


@dataclass(frozen=True, slots=True)
class TracedEntry:
    """A log entry that carries a trace context, as this member saw it."""

    context: bytes
    index: int
    term: int


class TraceHooks(Protocol):
    """What the log calls when tracing is on. Timestamps are `time.time_ns()` (wall clock, as spans use).
    The log calls these from its event loop, inside its write and apply paths: they must be quick and
    must not raise."""

    def current_context(self) -> bytes | None:
        """The proposer's current trace context as bytes (at most MAX_CONTEXT_BYTES), or None when the
        caller is not being traced (no span, or not sampled)."""
        ...

    def persisted(self, entries: Sequence[TracedEntry], start_ns: int, end_ns: int, batch: int, synced: bool) -> None:
        """`entries` were written to the WAL (with `batch` entries in all, fsynced if `synced`)."""
        ...

    def applied(self, entry: TracedEntry, start_ns: int, end_ns: int, result: object) -> None:
        """`entry` was applied to the state machine, which returned `result`."""
        ...


def attach(request_id: bytes, context: bytes | None, data: bytes) -> bytes:
    """A Raft entry's data: the request id and the proposal, with the trace block if there is a context."""
    if context is None or len(context) > MAX_CONTEXT_BYTES:
        return request_id + data
    flagged = request_id[:FLAG_OFFSET] + bytes((request_id[FLAG_OFFSET] | TRACE_FLAG,)) + request_id[FLAG_OFFSET + 1 :]
    return flagged + _LENGTH.pack(len(context)) + context + data


def is_traced(data: bytes) -> bool:
    return len(data) >= _HEAD_BYTES and data[FLAG_OFFSET] & TRACE_FLAG != 0


def request_id(data: bytes) -> bytes:
    """The request id an entry's data starts with, without the trace flag."""
    head = data[:REQUEST_ID_BYTES]
    if len(head) > FLAG_OFFSET and head[FLAG_OFFSET] & TRACE_FLAG:
        return head[:FLAG_OFFSET] + bytes((head[FLAG_OFFSET] & ~TRACE_FLAG,)) + head[FLAG_OFFSET + 1 :]
    return head


def split(data: bytes) -> tuple[bytes, bytes | None, bytes]:
    """An entry's data as (request id, trace context or None, proposal bytes)."""
    if not is_traced(data):
        return data[:REQUEST_ID_BYTES], None, data[REQUEST_ID_BYTES:]
    (length,) = _LENGTH.unpack_from(data, REQUEST_ID_BYTES)
    end = _HEAD_BYTES + length
    return request_id(data), data[_HEAD_BYTES:end], data[end:]
