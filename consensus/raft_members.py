"""Membership changes for the Raft driver: etcd's member add/remove/update/promote, the member registry
kept from committed conf changes, and each member publishing its name and client URLs through the log.

`MemberChanges` is a part of `RaftNode` (a mixin): it uses the node's state, declared below.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import membership as mb
from .log import LogError, MemberNotFound, NotLeader, PeerURLExists
from .membership import Member, Membership
from .raft import NONE, ConfChange, ConfChangeType, RawNode
from .raft.confchange import validate_change
from .transport import PeerTransport

if TYPE_CHECKING:
    from .raft_driver import RaftSettings

logger = logging.getLogger(__name__)


class MemberChanges:
    # The node's state these methods use (set by RaftNode).
    _settings: RaftSettings
    _membership: Membership
    _transport: PeerTransport | None
    _node: RawNode | None
    _leader: int
    _closed: bool
    _removed: bool
    _waiters: dict[bytes, tuple[asyncio.Future[object], object]]
    _ready_node: Callable[[], RawNode]
    _next_id: Callable[[], bytes]
    _submit: Callable[..., Awaitable[object]]

    def _peer_urls(self) -> dict[int, str]:
        """Where to reach every other member: the log's membership, else the command line's."""
        urls = {m.id: m.peer_urls[0] for m in self._settings.initial_members if m.peer_urls}
        urls.update(self._membership.peer_urls())
        for removed in self._membership.removed:
            urls.pop(removed, None)
        urls.pop(self._settings.member_id, None)
        return urls

    @property
    def cluster_id(self) -> int:
        return self._membership.cluster_id or self._settings.cluster_id

    def members(self) -> list[Member]:
        return self._membership.sorted_members()

    async def add_member(self, peer_urls: tuple[str, ...], is_learner: bool) -> Member:
        new_id = mb.member_id(peer_urls, self._settings.cluster_token)
        mb.check_add(self._membership, new_id, peer_urls, is_learner, self._reachable())
        kind = ConfChangeType.ADD_LEARNER if is_learner else ConfChangeType.ADD_VOTER
        await self._change(kind, new_id, peerURLs=list(peer_urls))
        return self._membership.members.get(new_id) or Member(new_id, peer_urls=peer_urls, is_learner=is_learner)

    async def remove_member(self, member_id: int) -> None:
        mb.check_remove(self._membership, member_id, self._reachable())
        await self._change(ConfChangeType.REMOVE_NODE, member_id)

    async def update_member(self, member_id: int, peer_urls: tuple[str, ...]) -> None:
        if member_id not in self._membership.members:
            raise MemberNotFound("member not found")
        if self._membership.holder_of(peer_urls, excluding=member_id) is not None:
            raise PeerURLExists("peer URLs already exist")
        await self._change(ConfChangeType.UPDATE_NODE, member_id, peerURLs=list(peer_urls))

    async def promote_member(self, member_id: int) -> None:
        node = self._ready_node()
        mb.check_promote(self._membership, member_id, 1, 0, self._reachable())  # what any member can tell
        if self._leader != self._settings.member_id:
            raise NotLeader("not leader")  # only the leader knows how far the learner has got
        progress = node.status().progress
        learner = progress.get(member_id)
        leader_match = progress[self._settings.member_id].match if progress else 0
        learner_match = learner.match if learner is not None else 0
        mb.check_promote(self._membership, member_id, learner_match, leader_match, self._reachable())
        await self._change(ConfChangeType.ADD_VOTER, member_id)

    def _reachable(self) -> set[int]:
        """Members this one is connected to, itself included (etcd's "connected since" checks)."""
        transport = self._transport
        peers = {m for m in self._membership.members if transport is not None and transport.connected(m)}
        return peers | {self._settings.member_id}

    async def _change(self, kind: ConfChangeType, node_id: int, timeout: float | None = None, **fields: object) -> None:
        node = self._ready_node()
        deadline = time.monotonic() + self._settings.request_timeout
        # One change at a time: the leader would turn a second one into a no-op, so wait our turn.
        while node.conf_change_pending and time.monotonic() < deadline:
            await asyncio.sleep(self._settings.tick_seconds / 4)
        request_id = self._next_id()
        change = ConfChange(kind, node_id, mb.encode_context(request_id, **fields))
        await self._submit(request_id, None, lambda: node.propose_conf_change(change), timeout)

    async def _publish_attributes(self) -> None:
        """Publish this member's name and client URLs through the log (etcd's member attributes)."""
        settings = self._settings
        name = next((m.name for m in settings.initial_members if m.id == settings.member_id), "")
        # Members starting together publish at once and the leader admits one change at a time,
        # turning the others into no-ops: retry after an election timeout, not a request timeout.
        retry_after = settings.tick_seconds * settings.election_ticks
        while not self._closed:
            me = self._membership.members.get(settings.member_id)
            if me is not None and me.name == name and me.client_urls == settings.client_urls:
                return
            if me is not None and self._leader != NONE:
                try:
                    await self._change(
                        ConfChangeType.UPDATE_NODE, settings.member_id, retry_after, name=name,
                        clientURLs=list(settings.client_urls),
                    )  # fmt: skip
                    continue
                except LogError as exc:
                    logger.info("publishing member attributes failed (%s); will retry", exc)
            await asyncio.sleep(retry_after * random.random())

    def _apply_conf_change(self, change: ConfChange) -> None:
        assert self._node is not None
        accepted = validate_change(self._node.status().conf_state, change) is None
        self._node.apply_conf_change(change)
        request_id, fields = mb.decode_context(change.context)
        if accepted:
            self._membership.apply(change, fields)
            self._membership_changed()
            if change.type is ConfChangeType.REMOVE_NODE and change.node_id == self._settings.member_id:
                logger.warning("this member has been removed from the cluster; it takes no more requests")
                self._removed = True
        waiter = self._waiters.pop(request_id, None)
        if waiter is not None and not waiter[0].done():
            waiter[0].set_result(None)

    def _membership_changed(self) -> None:
        if self._transport is not None:
            self._transport.set_peers(self._peer_urls())
