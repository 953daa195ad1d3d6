"""ReadIndex bookkeeping (§6.4 of the Raft thesis): pending read requests and heartbeat acks.

A read request records the commit index when it arrived; once a quorum acknowledges a heartbeat
carrying the request's context, the leader knows it was still leader at that moment, so serving the
read after applying up to that index is linearizable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.consensus.raft.types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    request: Message
    index: int
    acks: dict[int, bool] = field(default_factory=dict)


class ReadOnly:
    """Pending read requests keyed by context, in arrival order."""

    __slots__ = ("_pending", "_queue")

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadIndexStatus] = {}
        self._queue: list[bytes] = []

    def __len__(self) -> int:
        return len(self._queue)

    def add_request(self, index: int, request: Message) -> None:
        ctx = request.context
        if ctx in self._pending:
            return  # a duplicate context shares the first request's fate
        self._pending[ctx] = ReadIndexStatus(request, index)
        self._queue.append(ctx)

    def recv_ack(self, node_id: int, ctx: bytes) -> dict[int, bool] | None:
        """Record `node_id`'s heartbeat ack for `ctx`; returns the acks so far, or None if unknown."""
        status = self._pending.get(ctx)
        if status is None:
            return None
        status.acks[node_id] = True
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release the request with `ctx` and every request queued before it.

        An ack for a later heartbeat also confirms leadership for earlier requests.
        """
        if ctx not in self._pending:
            return []
        position = self._queue.index(ctx) + 1
        released = [self._pending.pop(c) for c in self._queue[:position]]
        del self._queue[:position]
        return released

    def last_pending_context(self) -> bytes:
        return self._queue[-1] if self._queue else b""
