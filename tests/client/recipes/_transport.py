"""A transport that counts the requests a client sends, for the recipes that promise a number of round trips."""

from __future__ import annotations

import collections

import httpx


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests a client sends, by path; `count` is the total."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: collections.Counter[str] = collections.Counter()

    @property
    def count(self) -> int:
        return sum(self.paths.values())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
