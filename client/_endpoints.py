"""Endpoint failover and the retry rule shared by both clients.

A client sticks to one endpoint until it fails, then moves to the next. A call is retried on another
endpoint when that is safe: reads (and other idempotent calls) after any transport failure or an
`Unavailable` answer; writes only when the connection was never made, so the request provably did not
reach a server, or when a Corral member answered `NOT_APPLIED` (the write provably was not, and never will
be, applied). Nothing is retried after the call's deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from corral.client._errors import RequestTimeout, ServerError, TransportError, Unavailable

__all__ = ["NOT_APPLIED", "Attempts", "Endpoints", "RetryPolicy", "transport_error"]

# The request never left: no server can have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

NOT_APPLIED = "etcdserver: leader changed, request not applied"
"""Corral's answer (code 14) for a write that a leader change provably kept out of the log for good.
etcd never sends it (its `etcdserver: leader changed` is about reads)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts (exponential with jitter), bounded by the call's deadline."""

    initial_backoff: float = 0.025
    max_backoff: float = 1.0
    deadline: float = 10.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)


class Endpoints:
    """The endpoints a client talks to, and which one is current."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        listed = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [_normalize(url) for part in listed for url in part.split(",") if url.strip()]
        if not self.urls:
            raise ValueError("at least one endpoint is needed")
        self._current = 0

    @property
    def current(self) -> str:
        return self.urls[self._current]

    def failed(self, url: str) -> None:
        """Move on from `url` (unless another caller already did)."""
        if self.urls[self._current] == url:
            self._current = (self._current + 1) % len(self.urls)

    def prefer(self, url: str) -> None:
        if url in self.urls:
            self._current = self.urls.index(url)


def _normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class Attempts:
    """The attempts of one call: which endpoint to use next, and whether a failure may be retried."""

    def __init__(self, endpoints: Endpoints, policy: RetryPolicy, idempotent: bool, deadline: float | None = None):
        self._endpoints = endpoints
        self._policy = policy
        self._idempotent = idempotent
        self._deadline = time.monotonic() + (policy.deadline if deadline is None else deadline)
        self._count = 0
        self.url = endpoints.current

    def next_url(self) -> str:
        self.url = self._endpoints.current
        return self.url

    def transport_failed(self, exc: Exception) -> float:
        """The pause before the next attempt; raises `TransportError` when the call must not be retried."""
        self._endpoints.failed(self.url)
        if not (self._idempotent or isinstance(exc, _NOT_SENT)):
            raise transport_error(exc, self.url) from exc
        return self._pause(transport_error(exc, self.url))

    def server_failed(self, exc: ServerError) -> float:
        """The pause before the next attempt; re-raises `exc` unless it is a retryable `Unavailable`."""
        if not isinstance(exc, Unavailable):
            raise exc
        if exc.message == NOT_APPLIED:
            # Not applied, whatever the call: retry it. The member that said so has just applied an entry
            # of the new leader's term, so it knows that leader: stay with it.
            return self._pause(exc)
        if not self._idempotent:
            raise exc
        self._endpoints.failed(self.url)
        return self._pause(exc)

    def _pause(self, exc: Exception) -> float:
        delay = self._policy.backoff(self._count)
        self._count += 1
        if time.monotonic() + delay > self._deadline:
            raise exc
        return delay if self._count >= len(self._endpoints.urls) else 0.0


def transport_error(exc: Exception, url: str) -> TransportError:
    """The client's exception for an httpx transport failure talking to `url`."""
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"{url}: timed out ({type(exc).__name__})")
    return TransportError(f"{url}: {exc or type(exc).__name__}")
