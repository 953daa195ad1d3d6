"""A private event loop in a daemon thread, so blocking callers can use the asyncio recipes.

Every recipe is written once, for `AsyncClient`; its blocking twin hands each call to the `Portal` of
its `Client`. Background work (lease keep-alives, watches feeding a cache) then runs on the portal's loop
while the caller's thread blocks only in the calls it makes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from corral.client._async import AsyncClient

T = TypeVar("T")
P = ParamSpec("P")

__all__ = ["Portal"]


class Portal:
    """An asyncio loop in a thread, and an `AsyncClient` on it configured like the owning `Client`."""

    def __init__(self, make_client: Callable[[], AsyncClient]) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="corral-portal", daemon=True)
        self._thread.start()
        self.client: AsyncClient = self.call(self._make, make_client)

    @staticmethod
    async def _make(make_client: Callable[[], AsyncClient]) -> AsyncClient:
        return make_client()

    def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on the loop and wait for its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(_await(fn(*args, **kwargs)), self.loop).result()

    def submit(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        """Start `fn` on the loop without waiting; the returned future carries its result."""
        return asyncio.run_coroutine_threadsafe(_await(fn(*args, **kwargs)), self.loop)

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """A blocking iterator over an async iterator that lives on the loop."""
        try:
            while True:
                try:
                    yield self.call(iterator.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and not self.loop.is_closed():  # a caller that stops early: close its watch
                if _on_loop(self.loop):
                    self.submit(close)  # collected on the loop's own thread: waiting would deadlock
                else:
                    self.call(close)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.call(self._shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()

    async def _shutdown(self) -> None:
        """Stop the background tasks (lease keep-alives, watches feeding recipes), then the client."""
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()  # iterators left open (a watch inside one is closed)
        await self.client.aclose()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run_callback(callback: Callable[..., Any], *args: Any) -> None:
    """Call a user's callback; a failing callback is logged, never allowed to kill a watch task."""
    try:
        callback(*args)
    except Exception:
        logging.getLogger("corral.client").exception("callback %r failed", callback)
