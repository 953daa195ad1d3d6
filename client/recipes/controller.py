"""Controller election: exactly one cluster controller at a time, with an epoch that fences the old one.

Guarantee: the controller epoch (the key `<name>/epoch`, a decimal number) grows by exactly one at every
change of controller: the winner of the election under `<name>/election/` bumps it in a txn that holds only
while the winner's leader key exists. Every write the controller makes through `fenced_txn` / `fenced_put` /
`fenced_delete` runs inside a txn comparing both the epoch and the leader key, so once a new controller
has taken over, a stale one (paused, partitioned, its lease expired) cannot write anything: its fenced
calls raise `FencedError` and none of their operations run, not even the failure branch.

Limit: fencing protects writes that go through the fenced calls (and readers that compare the epoch);
effects outside the store, made by a stale controller before it looks, are not fenced: carry `epoch` to
them as a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Unpack

from corral.client._async import AsyncClient
from corral.client._errors import TransportError
from corral.client._models import DeleteResult, KeyValue, PutResult, RangeResult, TxnResult
from corral.client._sync import Client
from corral.client.recipes._common import LeasedTwin, LeaseLike, OnLost, iterate, key_of, on_portal
from corral.client.recipes.election import AsyncElection, NotLeader
from corral.client.txn import Compare, DeleteOptions, KeyLike, Op, PutOptions, to_bytes
from corral.client.txn import create as create_of
from corral.client.txn import delete as delete_op
from corral.client.txn import get as get_op
from corral.client.txn import mod as mod_of
from corral.client.txn import put as put_op
from corral.client.txn import txn as txn_op
from corral.client.txn import value as value_of

__all__ = ["AsyncControllerElection", "ControllerElection", "FencedError"]

_BUMP_TRIES = 10


class FencedError(NotLeader):
    """A fenced write was refused: this controller's epoch is over (or it never was controller).
    Nothing of the write ran. `epoch` is ours, `current_epoch` the store's when it was refused."""

    def __init__(self, message: str, epoch: int | None = None, current_epoch: int | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.current_epoch = current_epoch


class AsyncControllerElection:
    """One candidate for controller of `name`.

        controller = AsyncControllerElection(client, "kafka/controller", ttl=5)
        epoch = await controller.campaign(b"broker-1")
        await controller.fenced_put("kafka/partitions/7/leader", b"broker-1")   # FencedError once stale

    `ttl`, `lease` and `on_lost` are as for `AsyncElection` (the leader key lives on that lease).
    """

    def __init__(
        self,
        client: AsyncClient,
        name: KeyLike,
        *,
        ttl: int = 10,
        lease: LeaseLike | None = None,
        identifier: KeyLike = b"",
        on_lost: OnLost | None = None,
    ) -> None:
        self.client = client
        self.name = key_of(name)
        self.epoch_key = self.name + b"/epoch"
        self.election = AsyncElection(
            client, self.name + b"/election", ttl=ttl, lease=lease, identifier=identifier, on_lost=on_lost
        )
        self._epoch: int | None = None

    @property
    def epoch(self) -> int | None:
        """This controller's epoch (None when not controller)."""
        return self._epoch

    @property
    def lost(self) -> asyncio.Event:
        return self.election.lost

    @property
    def fencing_token(self) -> int | None:
        """The leader key's create revision (None when not controller)."""
        return self.election.fencing_token if self._epoch is not None else None

    async def campaign(self, value: KeyLike | None = None, timeout: float | None = None) -> int:
        """Block until controller, bump the epoch, and return it. Raises as `AsyncElection.campaign`, and
        `NotLeader` if leadership was lost before the epoch could be bumped (the key is then deleted)."""
        token = await self.election.campaign(value, timeout)
        try:
            self._epoch = await self._bump(token)
        except BaseException:
            await self.election.resign()
            raise
        return self._epoch

    async def _bump(self, token: int) -> int:
        key = self.election.key
        assert key is not None
        compared: int | None = None  # the epoch's mod revision an attempt with a lost answer compared
        for _ in range(_BUMP_TRIES):
            found = (await self.client.get(self.epoch_key)).first
            seen = found.mod_revision if found is not None else 0
            if compared is not None and seen != compared:
                # Only a leader whose key exists writes the epoch, and every older leader's key was gone
                # before we led: the write after our read was our own attempt.
                return _number(found)
            try:
                result = await self.client.txn(
                    [create_of(key) == token, mod_of(self.epoch_key) == seen],
                    [put_op(self.epoch_key, str(_number(found) + 1))],
                    [get_op(key)],
                )
            except TransportError:
                compared = seen  # maybe applied: the next read tells
                continue
            compared = None
            if result.succeeded:
                return _number(found) + 1
            if _kv_of(result.responses[0]) is None:
                raise NotLeader(f"controller {self.name!r}: leadership lost before the epoch was bumped")
        raise NotLeader(f"controller {self.name!r}: could not bump the epoch in {_BUMP_TRIES} tries")

    def _fence(self) -> tuple[list[Compare], list[Op]]:
        key, token, epoch = self.election.key, self.election.fencing_token, self._epoch
        if key is None or token is None or epoch is None:
            raise FencedError(f"controller {self.name!r}: not controller (campaign() first)")
        compares = [create_of(key) == token, value_of(self.epoch_key) == str(epoch)]
        return compares, [get_op(self.epoch_key), get_op(key)]

    async def fenced_txn(
        self, compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        """A txn that runs only while this controller's epoch is current; raises `FencedError` otherwise.

        The caller's txn is nested inside one comparing the epoch and the leader key, so a fenced call
        runs neither branch. The result is the caller's txn's (with the outer header)."""
        fence, checks = self._fence()
        outer = await self.client.txn(fence, [txn_op(compare, success, failure)], checks)
        if not outer.succeeded:
            epoch_kv, leader_kv = (_kv_of(response) for response in outer.responses)
            why = "its leader key is gone" if leader_kv is None else "the epoch moved on"
            current = _number(epoch_kv)
            message = f"controller {self.name!r}: epoch {self._epoch} is fenced ({why}; current epoch {current})"
            raise FencedError(message, self._epoch, current)
        inner = outer.responses[0]
        assert isinstance(inner, TxnResult)
        return TxnResult(outer.header, inner.succeeded, inner.responses)

    async def fenced_put(self, key: KeyLike, value: KeyLike, **options: Unpack[PutOptions]) -> PutResult:
        """Put `key` only while this controller's epoch is current; raises `FencedError` otherwise."""
        result = await self.fenced_txn([], [put_op(key, value, **options)])
        put = result.responses[0]
        assert isinstance(put, PutResult)
        return PutResult(result.header, put.prev_kv)

    async def fenced_delete(self, key: KeyLike, **options: Unpack[DeleteOptions]) -> DeleteResult:
        """Delete `key` (or a range) only while this controller's epoch is current."""
        result = await self.fenced_txn([], [delete_op(key, **options)])
        deleted = result.responses[0]
        assert isinstance(deleted, DeleteResult)
        return DeleteResult(result.header, deleted.deleted, deleted.prev_kvs)

    async def resign(self) -> None:
        """Stop being controller (the epoch stays; the next controller bumps it)."""
        self._epoch = None
        await self.election.resign()

    async def is_controller(self) -> bool:
        """Whether this candidate is controller with a current epoch (asks the server)."""
        if self._epoch is None or not await self.election.is_leader():
            return False
        return await self.current_epoch() == self._epoch

    async def current_epoch(self) -> int:
        """The store's controller epoch (0 before the first controller)."""
        return _number((await self.client.get(self.epoch_key)).first)

    async def controller(self) -> KeyValue | None:
        """The controller's leader key and value now, or None."""
        return await self.election.leader()

    def observe(self) -> AsyncIterator[KeyValue | None]:
        """Each controller (None while there is none), as `AsyncElection.observe`."""
        return self.election.observe()


def _kv_of(response: object) -> KeyValue | None:
    return response.first if isinstance(response, RangeResult) else None


def _number(kv: KeyValue | None) -> int:
    return int(kv.value) if kv is not None and kv.value else 0


class ControllerElection(LeasedTwin[AsyncControllerElection]):
    """The blocking twin of `AsyncControllerElection`, run on the client's portal loop."""

    def __init__(
        self,
        client: Client,
        name: KeyLike,
        *,
        ttl: int = 10,
        lease: LeaseLike | None = None,
        identifier: KeyLike = b"",
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(client, on_lost)
        self._async = AsyncControllerElection(
            self._portal.client, name, ttl=ttl, lease=lease, identifier=to_bytes(identifier), on_lost=self._lost
        )

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def epoch_key(self) -> bytes:
        return self._async.epoch_key

    @property
    def epoch(self) -> int | None:
        return self._async.epoch

    @property
    def fencing_token(self) -> int | None:
        return self._async.fencing_token

    @property
    def lease_id(self) -> int:
        return self._async.election.lease_id

    def campaign(self, value: KeyLike | None = None, timeout: float | None = None) -> int:
        return self._begin(self._async.campaign, value, timeout)

    def fenced_txn(
        self, compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        return on_portal(self._portal, self._async.fenced_txn, compare, success, failure)

    def fenced_put(self, key: KeyLike, value: KeyLike, **options: Unpack[PutOptions]) -> PutResult:
        return on_portal(self._portal, self._async.fenced_put, key, value, **options)

    def fenced_delete(self, key: KeyLike, **options: Unpack[DeleteOptions]) -> DeleteResult:
        return on_portal(self._portal, self._async.fenced_delete, key, **options)

    def resign(self) -> None:
        on_portal(self._portal, self._async.resign)

    def is_controller(self) -> bool:
        return on_portal(self._portal, self._async.is_controller)

    def current_epoch(self) -> int:
        return on_portal(self._portal, self._async.current_epoch)

    def controller(self) -> KeyValue | None:
        return on_portal(self._portal, self._async.controller)

    def observe(self) -> Iterator[KeyValue | None]:
        return iterate(self._portal, self._async.observe())
