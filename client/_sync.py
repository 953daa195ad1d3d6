"""`Client`: the blocking client (httpx.Client), a thin shell over the sans-I/O calls in `_wire`."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, Unpack

import httpx
from corral.client import _tracing, _wire
from corral.client._endpoints import Attempts, Endpoints, RetryPolicy, transport_error
from corral.client._errors import CorralError, LeaseLostError, ServerError, TransportError, server_error
from corral.client._fastpath import BlockingUnaryPool, NotSent
from corral.client._lease_state import KeepAliveState
from corral.client._models import (
    DeleteResult,
    Event,
    Header,
    LeaseGrant,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
    WatchResponse,
)
from corral.client.txn import Compare, DeleteOptions, KeyLike, Op, PutOptions, RangeOptions
from corral.client.txn import create as create_revision_of
from corral.client.txn import put as put_op
from corral.client.txn import value as value_of
from corral.client.watch import WatchCursor, WatchOptions

if TYPE_CHECKING:
    from corral.client._portal import Portal

T = TypeVar("T")
_HEADERS = {"content-type": "application/json"}


class Client:
    """A blocking client for Corral or any etcd v3 JSON gateway.

        with Client(["http://127.0.0.1:2379", "http://127.0.0.1:22379"]) as client:
            client.put("config/a", "1")
            client.get("config/", prefix=True)

    `timeout` bounds one HTTP exchange; `retry.deadline` bounds a call with all its retries.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] = "http://127.0.0.1:2379",
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = Endpoints(endpoints)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._http = httpx.Client(timeout=timeout, limits=limits, transport=transport)
        self._pool = BlockingUnaryPool(timeout) if transport is None else None  # see _fastpath
        self._portal: Portal | None = None
        self._portal_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------------

    def call(self, call: _wire.Call[T]) -> T:
        """Run one unary call, failing over between endpoints where that is safe."""
        attempts = Attempts(self.endpoints, self.retry, call.idempotent)
        content = call.content()
        while True:
            url = attempts.next_url()
            try:
                return self._exchange(call, url, content)
            except httpx.TransportError as exc:
                delay = attempts.transport_failed(exc)
            except ServerError as exc:
                delay = attempts.server_failed(exc)
            if delay:
                time.sleep(delay)

    def _exchange(self, call: _wire.Call[T], url: str, content: bytes) -> T:
        if not _tracing.enabled():
            return _wire.result(call, *self._post(url, call.path, content, None))
        headers: dict[str, str] = {}
        with _tracing.client_span(call.path, url, headers):
            return _wire.result(call, *self._post(url, call.path, content, headers))

    def _post(self, url: str, path: str, content: bytes, headers: dict[str, str] | None) -> tuple[int, bytes]:
        if self._pool is None:
            response = self._http.post(url + path, content=content, headers={**_HEADERS, **(headers or {})})
            return response.status_code, response.content
        try:
            return self._pool.post(url, path, content, headers)
        except NotSent as exc:  # the rest of the client speaks httpx's exceptions
            raise httpx.ConnectError(str(exc)) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    def open_stream(self, path: str, content: bytes, timeout: httpx.Timeout | None = None) -> httpx.Response:
        """POST to a streaming route on the current endpoint; the caller reads and closes the response."""
        url = self.endpoints.current
        request = self._http.build_request("POST", url + path, content=content, headers=_HEADERS, timeout=timeout)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError:
            self.endpoints.failed(url)
            raise
        if response.status_code != 200:
            response.read()
            response.close()
            raise _wire_error(response)
        return response

    def portal(self) -> Portal:
        """The event loop thread the blocking recipes run on (started on first use, closed with the client)."""
        with self._portal_lock:
            if self._portal is None:
                from corral.client._async import AsyncClient
                from corral.client._portal import Portal

                urls, timeout, retry = self.endpoints.urls, self.timeout, self.retry
                self._portal = Portal(lambda: AsyncClient(urls, timeout=timeout, retry=retry))
            return self._portal

    def close(self) -> None:
        if self._portal is not None:
            self._portal.close()
        if self._pool is not None:
            self._pool.close()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- KV ---------------------------------------------------------------------------------------------

    def get(self, key: KeyLike, **options: Unpack[RangeOptions]) -> RangeResult:
        """Read a key, a range (`range_end`), a prefix (`prefix=True`) or every key from one (`from_key`)."""
        return self.call(_wire.range_(key, options))

    def get_prefix(self, key_prefix: KeyLike, **options: Unpack[RangeOptions]) -> RangeResult:
        return self.call(_wire.range_(key_prefix, options, prefix=True))

    def put(self, key: KeyLike, value: KeyLike, **options: Unpack[PutOptions]) -> PutResult:
        return self.call(_wire.put(key, value, options))

    def put_if_not_exists(self, key: KeyLike, value: KeyLike, lease: int = 0) -> bool:
        """Create `key` only if it does not exist; True when this call created it."""
        return self.txn([create_revision_of(key) == 0], [put_op(key, value, lease=lease)]).succeeded

    def replace(self, key: KeyLike, old: KeyLike, new: KeyLike) -> bool:
        """Set `key` to `new` only if it holds `old` now."""
        return self.txn([value_of(key) == old], [put_op(key, new)]).succeeded

    def delete(self, key: KeyLike, **options: Unpack[DeleteOptions]) -> DeleteResult:
        return self.call(_wire.delete(key, options))

    def delete_prefix(self, prefix: KeyLike, prev_kv: bool = False) -> DeleteResult:
        return self.call(_wire.delete(prefix, {"prefix": True, "prev_kv": prev_kv}))

    def txn(self, compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()) -> TxnResult:
        """Run `success` if every compare holds, else `failure`, atomically (see `corral.client.txn`)."""
        return self.call(_wire.txn(compare, success, failure))

    def compact(self, revision: int, physical: bool = False) -> Header:
        return self.call(_wire.compact(revision, physical))

    # -- leases -----------------------------------------------------------------------------------------

    def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        return self.call(_wire.lease_grant(ttl, lease_id))

    def lease_revoke(self, lease_id: int) -> Header:
        return self.call(_wire.lease_revoke(lease_id))

    def lease_keep_alive_once(self, lease_id: int) -> LeaseGrant:
        """Renew a lease once; the result's `ttl` is 0 when the lease no longer exists."""
        return self.call(_wire.lease_keep_alive_once(lease_id))

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseInfo:
        return self.call(_wire.lease_time_to_live(lease_id, keys))

    def leases(self) -> list[int]:
        return self.call(_wire.leases())

    def lease(self, ttl: int, *, lease_id: int = 0, on_lost: Callable[[LeaseLostError], Any] | None = None) -> Lease:
        """Grant a lease and keep it alive from a background thread until `revoke()` or the `with` block ends.

        If the lease is lost (expired, revoked elsewhere, or no keep-alive got through within its TTL),
        `on_lost` is called once from the keep-alive thread and `check()` raises `LeaseLostError`.
        """
        grant = self.lease_grant(ttl, lease_id)
        return Lease(self, grant.id, grant.ttl, on_lost)

    # -- watches ----------------------------------------------------------------------------------------

    def watch(self, key: KeyLike, *, reconnect_timeout: float = 60.0, **options: Unpack[WatchOptions]) -> Watch:
        """Watch a key, range or prefix; iterate the result for events (or `.responses()` for whole messages).

        The watch is registered when this returns. It reconnects on its own (to another endpoint if
        needed) from the first revision not yet delivered; after `reconnect_timeout` seconds without any
        endpoint it raises `TransportError`.
        """
        return Watch(self, WatchCursor(key, options), reconnect_timeout)

    def watch_prefix(self, key_prefix: KeyLike, **options: Any) -> Watch:
        return self.watch(key_prefix, prefix=True, **options)

    # -- cluster and maintenance ------------------------------------------------------------------------

    def members(self) -> list[Member]:
        return self.call(_wire.member_list())

    def member_add(self, peer_urls: Sequence[str], is_learner: bool = False) -> Member:
        return self.call(_wire.member_add(peer_urls, is_learner))

    def member_remove(self, member_id: int) -> list[Member]:
        return self.call(_wire.member_remove(member_id))

    def member_update(self, member_id: int, peer_urls: Sequence[str]) -> list[Member]:
        return self.call(_wire.member_update(member_id, peer_urls))

    def member_promote(self, member_id: int) -> list[Member]:
        return self.call(_wire.member_promote(member_id))

    def status(self, endpoint: str | None = None) -> Status:
        """The status of one endpoint (the current one by default), never failing over."""
        call, url = _wire.status(), endpoint.rstrip("/") if endpoint else self.endpoints.current
        try:
            return self._exchange(call, url, call.content())
        except httpx.TransportError as exc:
            raise transport_error(exc, url) from exc

    def health(self, endpoint: str | None = None) -> bool:
        """etcd's `/health` of one endpoint: True when it has a leader and answers."""
        try:
            response = self._http.get((endpoint or self.endpoints.current).rstrip("/") + "/health")
            return response.status_code == 200 and response.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    def move_leader(self, target_id: int) -> None:
        self.call(_wire.move_leader(target_id))

    def snapshot(self, into: BinaryIO) -> int:
        """Stream the current endpoint's snapshot into `into`; returns the number of bytes written."""
        written = 0
        response = self.open_stream("/v3/maintenance/snapshot", b"{}", httpx.Timeout(self.timeout, read=None))
        try:
            for line in response.iter_lines():
                if line:
                    chunk = _wire.snapshot_chunk(line.encode())
                    into.write(chunk)
                    written += len(chunk)
        finally:
            response.close()
        return written


def _wire_error(response: httpx.Response) -> ServerError:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text, "code": 2}
    return server_error(body, response.status_code)


class Lease:
    """A granted lease kept alive by a background thread (every TTL/3) until revoked or lost."""

    def __init__(self, client: Client, lease_id: int, ttl: int, on_lost: Callable[[LeaseLostError], Any] | None):
        self.id = lease_id
        self.ttl = ttl
        self._client = client
        self._state = KeepAliveState(lease_id, ttl, on_lost)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_alive, name=f"corral-lease-{lease_id:x}", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> bool:
        return self._state.lost is not None

    def check(self) -> None:
        """Raise `LeaseLostError` if the lease is gone."""
        if self._state.lost is not None:
            raise self._state.lost

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the lease is lost (True) or `timeout` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state.lost is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._stop.wait(0.05 if remaining is None else min(0.05, remaining))
        return True

    def time_to_live(self, keys: bool = False) -> LeaseInfo:
        return self._client.lease_time_to_live(self.id, keys)

    def revoke(self) -> None:
        """Stop keeping the lease alive and revoke it (its keys are deleted); a lost lease is left alone."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._state.lost is None:
            with contextlib.suppress(CorralError):  # unreachable: it expires on its own within its TTL
                self._client.lease_revoke(self.id)
            self._state.lost = LeaseLostError(self.id, "revoked")

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.revoke()

    def _keep_alive(self) -> None:
        while not self._stop.wait(self._state.pause()):
            try:
                grant = self._client.lease_keep_alive_once(self.id)
            except (TransportError, ServerError) as exc:
                self._state.failed(exc)
            else:
                self._state.renewed(grant.ttl)
            if self._state.lost is not None:
                return


class Watch:
    """A running watch: iterate for events; `cancel()` (from any thread) or the `with` block ends it."""

    def __init__(self, client: Client, cursor: WatchCursor, reconnect_timeout: float) -> None:
        self._client = client
        self._cursor = cursor
        self._reconnect_timeout = reconnect_timeout
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._canceled = False
        self._reader: threading.Thread | None = None
        self._connect()

    @property
    def next_revision(self) -> int:
        """The first revision this watch has not delivered yet."""
        return self._cursor.next_revision

    def __iter__(self) -> Iterator[Event]:
        for response in self.responses():
            yield from response.events

    def responses(self) -> Iterator[WatchResponse]:
        """Whole messages: every event of a revision together, and progress notices (no events)."""
        while not self._canceled:
            try:
                assert self._lines is not None
                self._reader = threading.current_thread()
                for line in self._lines:
                    if line:
                        response = self._cursor.feed(line.encode())
                        if response is not None:
                            yield response
            except (httpx.TransportError, httpx.StreamError):
                pass
            finally:
                self._reader = None
            if self._canceled:
                self._close_response()
                return
            self._close_response()
            self._client.endpoints.failed(self._client.endpoints.current)
            self._connect()

    def cancel(self) -> None:
        """End the watch; a thread blocked reading it wakes up and its iteration stops."""
        self._canceled = True
        response = self._response
        stream = response.extensions.get("network_stream") if response is not None else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a blocked recv() returns; close() alone would not wake it
        if self._reader is not threading.current_thread():
            self._close_response()  # else the reading thread closes it as its iteration stops

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            try:
                response.close()
            except (httpx.HTTPError, RuntimeError):
                pass

    def _connect(self) -> None:
        """Open a stream at the cursor's revision and wait for its `created` message."""
        deadline = time.monotonic() + self._reconnect_timeout
        pause = 0.05
        while not self._canceled:
            self._cursor.created = False
            try:
                self._response = self._client.open_stream(
                    "/v3/watch", self._cursor.create_request(), httpx.Timeout(self._client.timeout, read=None)
                )
                self._lines = self._response.iter_lines()
                for line in self._lines:
                    if line and self._cursor.feed(line.encode()) is None and self._cursor.created:
                        return
                raise httpx.ReadError("watch stream ended before it was created")
            except (httpx.TransportError, httpx.StreamError) as exc:
                self._close_response()
                if time.monotonic() + pause > deadline:
                    raise TransportError(f"watch: no endpoint answered for {self._reconnect_timeout} s: {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
