"""Leases: the replicated table of granted leases and their keys, and the leader's expiry clock.

The table is part of the state machine: grants and revokes are commands in the log, and a key is
attached to a lease by a put that names it (detached by a put without it, or by its deletion). The
table follows the MVCC store's committed events to know each lease's keys, so revoking a lease can
delete them all in one revision.

When a lease expires is not replicated state: only the leader's `Lessor` keeps deadlines, on its own
monotonic clock, and an expired lease is revoked by proposing a revoke command (etcd's primary lessor).
A member that becomes leader gives every lease its full TTL plus an extension, so a change of leader
never expires healthy leases.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable

from .errors import LeaseExists, LeaseNotFound
from .mvcc import MVCCStore
from .types import Event, EventType, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse

MAX_LEASE_TTL = 9_000_000_000  # seconds, etcd's limit


def minimum_ttl(election_timeout_s: float) -> int:
    """etcd's floor on a lease's TTL: 1.5 election timeouts, rounded up to whole seconds."""
    return math.ceil(1.5 * election_timeout_s)


class LeaseTable:
    """Granted leases (id -> TTL in seconds) and the keys attached to each."""

    def __init__(self, store: MVCCStore) -> None:
        self._ttls: dict[int, int] = {}
        self._keys: dict[int, set[bytes]] = {}
        # Told of grants and revokes as they are applied (the leader's lessor listens).
        self.listeners: list[Callable[[int, int | None], None]] = []
        self.attach_to(store)

    def attach_to(self, store: MVCCStore) -> None:
        """Follow `store`'s commits, and attach the keys it already holds (after a restore)."""
        self._store = store
        store.observers.append(self._observe)
        self._keys = {}
        for kv in store.current_leased():
            self._keys.setdefault(kv.lease, set()).add(kv.key)

    def exists(self, lease_id: int) -> bool:
        return lease_id in self._ttls

    def ttl(self, lease_id: int) -> int | None:
        return self._ttls.get(lease_id)

    def keys(self, lease_id: int) -> list[bytes]:
        return sorted(self._keys.get(lease_id, ()))

    def ids(self) -> list[int]:
        return list(self._ttls)

    def items(self) -> list[tuple[int, int]]:
        return list(self._ttls.items())

    def restore(self, leases: Iterable[tuple[int, int]]) -> None:
        self._ttls = dict(leases)

    def grant(self, request: LeaseGrantRequest) -> LeaseGrantResponse:
        if request.id in self._ttls:
            raise LeaseExists()
        self._ttls[request.id] = request.ttl
        for listener in self.listeners:
            listener(request.id, request.ttl)
        return LeaseGrantResponse(self._store.revision, request.id, request.ttl)

    def revoke(self, request: LeaseRevokeRequest) -> LeaseRevokeResponse:
        """Delete every key attached to the lease in one revision (none if it has no keys), then it."""
        if request.id not in self._ttls:
            raise LeaseNotFound()
        txn = self._store.write()
        for key in self.keys(request.id):
            txn.delete_range(key)
        revision = txn.commit()
        del self._ttls[request.id]
        self._keys.pop(request.id, None)
        for listener in self.listeners:
            listener(request.id, None)
        return LeaseRevokeResponse(revision)

    def _observe(self, revision: int, events: list[Event]) -> None:
        keys = self._keys
        for event in events:
            prev, kv = event.prev_kv, event.kv
            if prev is not None and prev.lease and (prev.lease != kv.lease or event.type is EventType.DELETE):
                attached = keys.get(prev.lease)
                if attached is not None:
                    attached.discard(kv.key)
                    if not attached:
                        del keys[prev.lease]
            if event.type is EventType.PUT and kv.lease:
                keys.setdefault(kv.lease, set()).add(kv.key)


class Lessor:
    """The leader's expiry clock: a deadline per lease, on a monotonic clock the caller passes in.

    Only the leader runs one (`promote` on election, `demote` on losing it); followers keep none and never
    expire a lease themselves. Expired leases are reported, at most `limit` at a time, and reported again
    only after `retry_after` seconds if the revoke has not been applied by then.
    """

    def __init__(self, retry_after: float = 3.0) -> None:
        self._deadlines: dict[int, float] = {}
        self._ttls: dict[int, int] = {}
        self._heap: list[tuple[float, int]] = []
        self._retry_after = retry_after
        self.primary = False

    def promote(self, leases: Iterable[tuple[int, int]], now: float, extend: float) -> None:
        self.primary = True
        self._deadlines, self._ttls, self._heap = {}, {}, []
        for lease_id, ttl in leases:
            self._set(lease_id, ttl, now + ttl + extend)

    def demote(self) -> None:
        self.primary = False
        self._deadlines, self._ttls, self._heap = {}, {}, []

    def on_change(self, lease_id: int, ttl: int | None, now: float) -> None:
        """A grant (`ttl`) or revoke (None) was applied."""
        if not self.primary:
            return
        if ttl is None:
            self._deadlines.pop(lease_id, None)
            self._ttls.pop(lease_id, None)
        else:
            self._set(lease_id, ttl, now + ttl)

    def knows(self, lease_id: int) -> bool:
        return lease_id in self._ttls

    def renew(self, lease_id: int, now: float) -> int:
        """Keep a lease alive: its full TTL again from now. Returns the TTL, 0 for an unknown lease."""
        ttl = self._ttls.get(lease_id)
        if ttl is None:
            return 0
        self._set(lease_id, ttl, now + ttl)
        return ttl

    def remaining(self, lease_id: int, now: float) -> float | None:
        deadline = self._deadlines.get(lease_id)
        return None if deadline is None else max(0.0, deadline - now)

    def expired(self, now: float, limit: int) -> list[int]:
        """Leases past their deadline, oldest first, at most `limit`."""
        found: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(found) < limit:
            deadline, lease_id = heapq.heappop(heap)
            if self._deadlines.get(lease_id) != deadline:
                continue  # renewed or revoked since: a stale heap entry
            found.append(lease_id)
            self._set(lease_id, self._ttls[lease_id], now + self._retry_after)
        return found

    def _set(self, lease_id: int, ttl: int, deadline: float) -> None:
        self._ttls[lease_id] = ttl
        self._deadlines[lease_id] = deadline
        heapq.heappush(self._heap, (deadline, lease_id))
