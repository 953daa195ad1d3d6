"""When to renew a kept-alive lease, and when to call it lost: shared by the thread and the task."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from corral.client._errors import CorralError, LeaseLostError, LeaseNotFound

logger = logging.getLogger("corral.client")


class KeepAliveState:
    """Renew every TTL/3; retry faster after a failure; lost when the server says so or the TTL ran out."""

    def __init__(self, lease_id: int, ttl: int, on_lost: Callable[[LeaseLostError], Any] | None) -> None:
        self.lease_id = lease_id
        self.ttl = ttl
        self.expires_at = time.monotonic() + ttl  # the latest moment the server may still hold the lease
        self.lost: LeaseLostError | None = None
        self._on_lost = on_lost
        self._failing = False

    def pause(self) -> float:
        if self._failing:
            return min(0.5, max(self.ttl / 10, 0.05))
        return max(self.ttl / 3, 0.1)

    def renewed(self, ttl: int) -> None:
        if ttl <= 0:
            self._lose("expired or revoked")
        else:
            self._failing = False
            self.ttl = ttl
            self.expires_at = time.monotonic() + ttl

    def failed(self, exc: CorralError) -> None:
        self._failing = True
        if isinstance(exc, LeaseNotFound):
            self._lose("not found")
        elif time.monotonic() >= self.expires_at:
            self._lose(f"no keep-alive got through within the TTL ({exc})")

    def _lose(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = LeaseLostError(self.lease_id, reason)
        if self._on_lost is not None:
            try:
                self._on_lost(self.lost)
            except Exception:  # a callback's error must not kill the keep-alive machinery silently
                logger.exception("on_lost callback of lease %x failed", self.lease_id)
