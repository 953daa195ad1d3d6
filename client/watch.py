"""Resumable watches, sans-I/O: the request to (re)open a watch and the reading of its messages.

A `WatchCursor` remembers the next revision the caller has not seen. Every (re)connection asks the
server for exactly that revision onwards, so a caller never sees a gap or a duplicate across server
failures. A compacted start raises `CompactedError` carrying `compact_revision`: re-read, then watch again.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import orjson
from corral.client._errors import CompactedError, WatchCanceled, server_error
from corral.client._models import Event, WatchResponse
from corral.client.txn import KeyLike, key_range

__all__ = ["WatchCursor", "WatchOptions"]


class WatchOptions(TypedDict, total=False):
    """Options of a watch, with etcd's names; `start_revision` 0 means "from now"."""

    range_end: KeyLike
    prefix: bool
    from_key: bool
    start_revision: int
    prev_kv: bool
    filters: list[Literal["NOPUT", "NODELETE"]]
    progress_notify: bool


class WatchCursor:
    """The state of one logical watch across any number of server streams."""

    def __init__(self, key: KeyLike, options: WatchOptions) -> None:
        request: dict[str, Any] = key_range(
            key, options.get("range_end"), options.get("prefix", False), options.get("from_key", False)
        )
        for flag in ("prev_kv", "progress_notify"):
            if options.get(flag):
                request[flag] = True
        if options.get("filters"):
            request["filters"] = list(options["filters"])
        self._request = request
        self.next_revision = options.get("start_revision", 0)
        self.created = False
        self._fragments: list[Event] = []

    def create_request(self) -> bytes:
        """The body that (re)opens the watch at the first revision not yet seen."""
        self._fragments = []
        request = dict(self._request)
        if self.next_revision > 0:
            request["start_revision"] = str(self.next_revision)
        return orjson.dumps({"create_request": request})

    def feed(self, line: bytes) -> WatchResponse | None:
        """Read one stream message: a response for the caller, or None (created notice, partial fragment)."""
        data = orjson.loads(line)
        if "result" not in data:
            raise server_error(data, 200)
        response = WatchResponse.decode(data["result"])
        if response.canceled:
            if response.compact_revision:
                raise CompactedError(compact_revision=response.compact_revision)
            raise WatchCanceled(response.cancel_reason)
        if response.created:
            self.created = True
            if self.next_revision <= 0:
                self.next_revision = response.header.revision + 1
            return None
        if response.fragment:
            self._fragments.extend(response.events)
            return None
        if self._fragments:
            events, self._fragments = self._fragments + response.events, []
            response = WatchResponse(response.header, events, response.watch_id)
        if response.events:
            self.next_revision = response.events[-1].revision + 1
        elif response.header.revision >= self.next_revision:  # progress: everything up to here was delivered
            self.next_revision = response.header.revision + 1
        return response
