"""`AsyncClient`: the asyncio twin of `Client` (httpx.AsyncClient), over the same sans-I/O calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any, BinaryIO, TypeVar, Unpack

import httpx
from corral.client import _tracing, _wire
from corral.client._endpoints import Attempts, Endpoints, RetryPolicy, transport_error
from corral.client._errors import CorralError, LeaseLostError, ServerError, TransportError
from corral.client._fastpath import NotSent, UnaryPool
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
from corral.client._sync import _wire_error
from corral.client.txn import Compare, DeleteOptions, KeyLike, Op, PutOptions, RangeOptions
from corral.client.txn import create as create_revision_of
from corral.client.txn import put as put_op
from corral.client.txn import value as value_of
from corral.client.watch import WatchCursor, WatchOptions

T = TypeVar("T")
_HEADERS = {"content-type": "application/json"}


class AsyncClient:
    """The asyncio client; every method of `Client`, awaited.

    async with AsyncClient("http://127.0.0.1:2379") as client:
        await client.put("config/a", "1")
        async with await client.watch("config/", prefix=True) as watch:
            async for event in watch: ...
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] = "http://127.0.0.1:2379",
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = Endpoints(endpoints)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)
        self._pool = UnaryPool(timeout) if transport is None else None  # see _fastpath: httpx costs ~100 µs a call

    # -- plumbing ---------------------------------------------------------------------------------------

    async def call(self, call: _wire.Call[T]) -> T:
        attempts = Attempts(self.endpoints, self.retry, call.idempotent)
        content = call.content()
        while True:
            url = attempts.next_url()
            try:
                return await self._exchange(call, url, content)
            except httpx.TransportError as exc:
                delay = attempts.transport_failed(exc)
            except ServerError as exc:
                delay = attempts.server_failed(exc)
            if delay:
                await asyncio.sleep(delay)

    async def _exchange(self, call: _wire.Call[T], url: str, content: bytes) -> T:
        if not _tracing.enabled():
            return _wire.result(call, *await self._post(url, call.path, content, None))
        headers: dict[str, str] = {}
        with _tracing.client_span(call.path, url, headers):
            return _wire.result(call, *await self._post(url, call.path, content, headers))

    async def _post(self, url: str, path: str, content: bytes, headers: dict[str, str] | None) -> tuple[int, bytes]:
        if self._pool is None:
            response = await self._http.post(url + path, content=content, headers={**_HEADERS, **(headers or {})})
            return response.status_code, response.content
        try:
            return await self._pool.post(url, path, content, headers)
        except NotSent as exc:  # the rest of the client speaks httpx's exceptions
            raise httpx.ConnectError(str(exc)) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def open_stream(self, path: str, content: bytes, timeout: httpx.Timeout | None = None) -> httpx.Response:
        url = self.endpoints.current
        request = self._http.build_request("POST", url + path, content=content, headers=_HEADERS, timeout=timeout)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError:
            self.endpoints.failed(url)
            raise
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            raise _wire_error(response)
        return response

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- KV ---------------------------------------------------------------------------------------------

    async def get(self, key: KeyLike, **options: Unpack[RangeOptions]) -> RangeResult:
        return await self.call(_wire.range_(key, options))

    async def get_prefix(self, key_prefix: KeyLike, **options: Unpack[RangeOptions]) -> RangeResult:
        return await self.call(_wire.range_(key_prefix, options, prefix=True))

    async def put(self, key: KeyLike, value: KeyLike, **options: Unpack[PutOptions]) -> PutResult:
        return await self.call(_wire.put(key, value, options))

    async def put_if_not_exists(self, key: KeyLike, value: KeyLike, lease: int = 0) -> bool:
        return (await self.txn([create_revision_of(key) == 0], [put_op(key, value, lease=lease)])).succeeded

    async def replace(self, key: KeyLike, old: KeyLike, new: KeyLike) -> bool:
        return (await self.txn([value_of(key) == old], [put_op(key, new)])).succeeded

    async def delete(self, key: KeyLike, **options: Unpack[DeleteOptions]) -> DeleteResult:
        return await self.call(_wire.delete(key, options))

    async def delete_prefix(self, prefix: KeyLike, prev_kv: bool = False) -> DeleteResult:
        return await self.call(_wire.delete(prefix, {"prefix": True, "prev_kv": prev_kv}))

    async def txn(
        self, compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        return await self.call(_wire.txn(compare, success, failure))

    async def compact(self, revision: int, physical: bool = False) -> Header:
        return await self.call(_wire.compact(revision, physical))

    # -- leases -----------------------------------------------------------------------------------------

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        return await self.call(_wire.lease_grant(ttl, lease_id))

    async def lease_revoke(self, lease_id: int) -> Header:
        return await self.call(_wire.lease_revoke(lease_id))

    async def lease_keep_alive_once(self, lease_id: int) -> LeaseGrant:
        return await self.call(_wire.lease_keep_alive_once(lease_id))

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseInfo:
        return await self.call(_wire.lease_time_to_live(lease_id, keys))

    async def leases(self) -> list[int]:
        return await self.call(_wire.leases())

    def lease(
        self, ttl: int, *, lease_id: int = 0, on_lost: Callable[[LeaseLostError], Any] | None = None
    ) -> _Starting[AsyncLease]:
        """Grant a lease kept alive by a task: `lease = await client.lease(10)` or `async with client.lease(10)`."""
        return _Starting(self._start_lease(ttl, lease_id, on_lost))

    async def _start_lease(
        self, ttl: int, lease_id: int, on_lost: Callable[[LeaseLostError], Any] | None
    ) -> AsyncLease:
        grant = await self.lease_grant(ttl, lease_id)
        return AsyncLease(self, grant.id, grant.ttl, on_lost)

    # -- watches ----------------------------------------------------------------------------------------

    def watch(
        self, key: KeyLike, *, reconnect_timeout: float = 60.0, **options: Unpack[WatchOptions]
    ) -> _Starting[AsyncWatch]:
        """A watch, registered once awaited: `async with client.watch("k") as w: async for event in w`."""
        return _Starting(self._start_watch(WatchCursor(key, options), reconnect_timeout))

    def watch_prefix(self, key_prefix: KeyLike, **options: Any) -> _Starting[AsyncWatch]:
        return self.watch(key_prefix, prefix=True, **options)

    async def _start_watch(self, cursor: WatchCursor, reconnect_timeout: float) -> AsyncWatch:
        watch = AsyncWatch(self, cursor, reconnect_timeout)
        await watch._connect()
        return watch

    # -- cluster and maintenance ------------------------------------------------------------------------

    async def members(self) -> list[Member]:
        return await self.call(_wire.member_list())

    async def member_add(self, peer_urls: Sequence[str], is_learner: bool = False) -> Member:
        return await self.call(_wire.member_add(peer_urls, is_learner))

    async def member_remove(self, member_id: int) -> list[Member]:
        return await self.call(_wire.member_remove(member_id))

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> list[Member]:
        return await self.call(_wire.member_update(member_id, peer_urls))

    async def member_promote(self, member_id: int) -> list[Member]:
        return await self.call(_wire.member_promote(member_id))

    async def status(self, endpoint: str | None = None) -> Status:
        call, url = _wire.status(), endpoint.rstrip("/") if endpoint else self.endpoints.current
        try:
            return await self._exchange(call, url, call.content())
        except httpx.TransportError as exc:
            raise transport_error(exc, url) from exc

    async def health(self, endpoint: str | None = None) -> bool:
        try:
            response = await self._http.get((endpoint or self.endpoints.current).rstrip("/") + "/health")
            return response.status_code == 200 and response.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    async def move_leader(self, target_id: int) -> None:
        await self.call(_wire.move_leader(target_id))

    async def snapshot(self, into: BinaryIO) -> int:
        written = 0
        timeout = httpx.Timeout(self.timeout, read=None)
        response = await self.open_stream("/v3/maintenance/snapshot", b"{}", timeout)
        try:
            async for line in response.aiter_lines():
                if line:
                    chunk = _wire.snapshot_chunk(line.encode())
                    into.write(chunk)
                    written += len(chunk)
        finally:
            await response.aclose()
        return written


class _Starting(Awaitable[T]):
    """Something that starts when awaited or entered with `async with` (and stops when the block ends)."""

    def __init__(self, start: Awaitable[T]) -> None:
        self._start = start
        self._value: Any = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._start.__await__()

    async def __aenter__(self) -> T:
        self._value = await self._start
        return self._value  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        await self._value.__aexit__(*exc)


class AsyncLease:
    """A granted lease kept alive by a task (every TTL/3) until revoked or lost."""

    def __init__(self, client: AsyncClient, lease_id: int, ttl: int, on_lost: Callable[[LeaseLostError], Any] | None):
        self.id = lease_id
        self.ttl = ttl
        self._client = client
        self._state = KeepAliveState(lease_id, ttl, on_lost)
        self._lost = asyncio.Event()
        self._task = asyncio.create_task(self._keep_alive(), name=f"corral-lease-{lease_id:x}")

    @property
    def lost(self) -> bool:
        return self._state.lost is not None

    def check(self) -> None:
        if self._state.lost is not None:
            raise self._state.lost

    async def wait_lost(self, timeout: float | None = None) -> bool:
        """Wait until the lease is lost (True) or `timeout` passes (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lost.wait(), timeout)
        return self._state.lost is not None

    async def time_to_live(self, keys: bool = False) -> LeaseInfo:
        return await self._client.lease_time_to_live(self.id, keys)

    async def revoke(self) -> None:
        if self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._state.lost is None:
            with contextlib.suppress(CorralError):
                await self._client.lease_revoke(self.id)
            self._state.lost = LeaseLostError(self.id, "revoked")
        self._lost.set()

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.revoke()

    async def _keep_alive(self) -> None:
        while self._state.lost is None:
            await asyncio.sleep(self._state.pause())
            try:
                grant = await self._client.lease_keep_alive_once(self.id)
            except (TransportError, ServerError) as exc:
                self._state.failed(exc)
            else:
                self._state.renewed(grant.ttl)
        self._lost.set()


class AsyncWatch:
    """A running watch: `async for event in watch`; `cancel()` or the `async with` block ends it."""

    def __init__(self, client: AsyncClient, cursor: WatchCursor, reconnect_timeout: float) -> None:
        self._client = client
        self._cursor = cursor
        self._reconnect_timeout = reconnect_timeout
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._canceled = False

    @property
    def next_revision(self) -> int:
        return self._cursor.next_revision

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for response in self.responses():
            for event in response.events:
                yield event

    async def responses(self) -> AsyncIterator[WatchResponse]:
        while not self._canceled:
            try:
                assert self._lines is not None
                async for line in self._lines:
                    if line:
                        response = self._cursor.feed(line.encode())
                        if response is not None:
                            yield response
            except (httpx.TransportError, httpx.StreamError):
                pass
            if self._canceled:
                return
            await self._close_response()
            self._client.endpoints.failed(self._client.endpoints.current)
            await self._connect()

    async def cancel(self) -> None:
        self._canceled = True
        await self._close_response()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()

    async def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(httpx.HTTPError, RuntimeError):
                await response.aclose()

    async def _connect(self) -> None:
        deadline = time.monotonic() + self._reconnect_timeout
        pause = 0.05
        while not self._canceled:
            self._cursor.created = False
            try:
                self._response = await self._client.open_stream(
                    "/v3/watch", self._cursor.create_request(), httpx.Timeout(self._client.timeout, read=None)
                )
                self._lines = self._response.aiter_lines()
                async for line in self._lines:
                    if line and self._cursor.feed(line.encode()) is None and self._cursor.created:
                        return
                raise httpx.ReadError("watch stream ended before it was created")
            except (httpx.TransportError, httpx.StreamError) as exc:
                await self._close_response()
                if time.monotonic() + pause > deadline:
                    raise TransportError(f"watch: no endpoint answered for {self._reconnect_timeout} s: {exc}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
