"""The Raft-replicated log: an asyncio driver around the pure Raft core.

It feeds the core ticks, peer messages and proposals, and works each `Ready` in the order the core
requires: persist (entries, hard state, snapshot: one WAL write and an fdatasync on the disk thread), then
send messages, then apply committed entries and serve read states, then advance. Proposals carry a
request id so that whichever node proposed a command (a follower forwards it to the leader) is woken
when the command is applied there. A proposal that a leader change has ruled out is answered
`NotApplied` as soon as that is certain (proposal_stamps.py). Linearizable reads use ReadIndex, batched:
all reads waiting when a round starts share it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from . import membership as mb
from . import raft_snapshots
from . import trace_hooks as tracing
from . import wal as wal_records
from .log import (
    BadTransferee,
    LogClosed,
    LogError,
    LogFailed,
    LogStatus,
    NotApplied,
    NotLeader,
    StateMachine,
)
from .membership import Member, Membership
from .proposal_stamps import ProposalStamps
from .raft import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDropped,
    RaftConfig,
    RawNode,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)
from .raft.storage import MemoryStorage
from .raft_members import MemberChanges
from .raft_snapshots import SnapshotMaking
from .read_index import AppliedWaiters, ReadRounds
from .snapfile import SnapshotFiles
from .stats import SLOW_APPLY_SECONDS, LogStats
from .trace_hooks import TracedEntry, TraceHooks
from .transport import PeerTransport

logger = logging.getLogger(__name__)

DEFAULT_TICK_SECONDS = 0.1  # etcd's default heartbeat interval
DEFAULT_ELECTION_TICKS = 10  # etcd's default election timeout: 1 s
DEFAULT_REQUEST_TIMEOUT = 7.0  # etcd: 5 s + 2 election timeouts
READ_ROUND_RETRY_SECONDS = 0.5  # a ReadIndex round unanswered this long is sent again (etcd: 500 ms)
SNAPSHOT_CATCH_UP_ENTRIES = 5000  # entries kept after a snapshot for slow followers (as etcd)
_REQUEST_ID_BYTES = mb.REQUEST_ID_BYTES  # member id and a counter: unique across the cluster
_LEADER_MESSAGES = frozenset(
    {MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP, MessageType.TIMEOUT_NOW, MessageType.READ_INDEX_RESP}
)


class NoLeader(LogError):
    """No leader is known, so the proposal could not be placed."""


class LogTimeout(LogError):
    """The request did not complete in time; it may still be applied later."""


@dataclass(frozen=True, slots=True)
class RaftSettings:
    member_id: int
    initial_members: tuple[Member, ...]  # --initial-cluster: names and peer URLs, this member included
    listen_peer_url: str
    snapshot_count: int
    cluster_token: str = "etcd-cluster"
    cluster_id: int = 0  # a new cluster's id (from its founding members); joiners learn it from the log
    bootstrap: bool = True  # a new cluster; False joins an existing one (--initial-cluster-state existing)
    client_urls: tuple[str, ...] = ()  # published through the log once this member runs
    tick_seconds: float = DEFAULT_TICK_SECONDS
    election_ticks: int = DEFAULT_ELECTION_TICKS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    snapshot_catch_up_entries: int = SNAPSHOT_CATCH_UP_ENTRIES


class RaftNode(MemberChanges, SnapshotMaking):
    """A member's replicated log (the `ReplicatedLog` protocol) backed by Raft."""

    def __init__(
        self, data_dir: Path, state_machine: StateMachine, settings: RaftSettings, trace_hooks: TraceHooks | None = None
    ) -> None:
        self._settings = settings
        self._hooks = trace_hooks  # None: tracing is off, and the log does no tracing work
        self._state_machine = state_machine
        self._wal_dir = data_dir / "member" / "wal"
        self._snap_dir = data_dir / "member" / "snap"
        self._snapshots = SnapshotFiles(self._snap_dir)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-wal")
        self._snapshot_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-snapshot")
        self._storage = MemoryStorage()
        self._membership = Membership()
        self._removed = False
        self.stats = LogStats()
        self._heartbeats_sent: dict[int, float] = {}  # peer -> when the last heartbeat went out
        self._node: RawNode | None = None
        self._wal: wal_records.WAL | None = None
        self._transport: PeerTransport | None = None
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[bytes, tuple[asyncio.Future[object], object]] = {}
        self._request_ids = itertools.count(1)
        self._reads = ReadRounds()
        self._proposals: list[bytes] = []  # entries waiting for the next Ready...
        self._proposal_ids: list[bytes] = []  # ...and their request ids
        self._stamps = ProposalStamps()  # the term each proposal the core took was stamped with
        self._applied_waiters = AppliedWaiters()
        self._term = 0
        self._leader = NONE
        self._role = Role.FOLLOWER
        self._commit = 0
        self._snapshot_indexes: list[int] = []
        self._snapshotting: asyncio.Task[None] | None = None
        self._snapshot_sends: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._closed = False
        self._deaf_to: frozenset[int] = frozenset()  # fault injection: drop messages from these peers
        self._mute_to: frozenset[int] = frozenset()  # ...and to these

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        applied = await loop.run_in_executor(self._disk, self._recover)
        config = RaftConfig(
            id=self._settings.member_id,
            rng=random.Random(),
            election_tick=self._settings.election_ticks,
            heartbeat_tick=1,
            applied=applied,
        )
        config.validate()
        self._node = RawNode(config, self._storage)
        self._transport = PeerTransport(
            self._settings.member_id, self._settings.listen_peer_url, self._peer_urls(), self._on_message,
            self._on_unreachable,
        )  # fmt: skip
        await self._transport.start()
        self._tasks = [
            asyncio.create_task(self._run(), name="corral-raft-ready"),
            asyncio.create_task(self._tick(), name="corral-raft-tick"),
            asyncio.create_task(self._publish_attributes(), name="corral-raft-publish"),
        ]
        self._wakeup.set()

    def _recover(self) -> int:
        """Rebuild storage and state from the newest snapshot and the WAL; return the applied index."""
        applied = 0
        snapshot = self._snapshots.load_newest()
        if snapshot is not None:
            conf, self._membership, state = raft_snapshots.split(snapshot.data)
            self._state_machine.restore(state)
            self._storage.apply_snapshot(Snapshot(SnapshotMeta(snapshot.index, snapshot.term, conf)))
            self._snapshot_indexes.append(snapshot.index)
            applied = snapshot.index
        wal, contents = wal_records.WAL.open(self._wal_dir)
        if contents.truncated_bytes:
            logger.warning("WAL had a torn or corrupt tail: dropped %d bytes", contents.truncated_bytes)
        self._wal = wal
        wal.on_sync = self.stats.wal_fsync.observe
        if snapshot is None and not contents.entries and contents.state.term == 0 and self._settings.bootstrap:
            self._bootstrap(wal)
            return 0
        state = contents.state
        # The commit index is written lazily, so it may trail what the snapshot already applied.
        self._storage.set_hard_state(HardState(state.term, state.vote, max(state.commit, applied)))
        self._storage.append([_from_wal(entry) for entry in contents.entries])
        self._term = state.term
        logger.info("recovered: snapshot at %d, log to %d, term %d", applied, self._storage.last_index(), state.term)
        return applied

    def _bootstrap(self, wal: wal_records.WAL) -> None:
        """A new cluster's log starts with one committed conf change per founding member, so that every
        member, including one added much later, learns the founders by replaying the log."""
        changes = mb.bootstrap_changes(list(self._settings.initial_members), self._settings.cluster_id)
        entries = [Entry(1, i, change.encode(), EntryType.CONF_CHANGE) for i, change in enumerate(changes, 1)]
        hard = HardState(term=1, commit=len(entries))
        wal.append_entries([_to_wal(entry) for entry in entries])
        wal.save_state(wal_records.HardState(hard.term, hard.vote, hard.commit))
        wal.sync()
        self._storage.append(entries)
        self._storage.set_hard_state(hard)
        self._term = 1
        logger.info("bootstrapped a new cluster of %d members", len(entries))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks = []
        if self._snapshotting is not None:
            await self._snapshotting
        for task in list(self._snapshot_sends):
            task.cancel()
        if self._transport is not None:
            await self._transport.close()
        self._fail_waiters(LogClosed("the log is closed"))
        loop = asyncio.get_running_loop()
        if self._wal is not None:
            await loop.run_in_executor(self._disk, self._wal.close)
        self._disk.shutdown(wait=True)
        self._snapshot_thread.shutdown(wait=True)

    # -- the ReplicatedLog protocol ----------------------------------------------------------------

    @property
    def term(self) -> int:
        return self._term

    async def propose(self, data: bytes, decoded: object | None = None) -> object:
        self._ready_node()
        request_id = self._next_id()
        entry = request_id + data if self._hooks is None else self._traced_entry(request_id, data)
        # Proposals are queued and handed to the core together once per Ready: one append and one
        # message per follower for the whole batch, not one for each proposal.
        return await self._submit(request_id, decoded, lambda: self._enqueue(request_id, entry))

    def _enqueue(self, request_id: bytes, entry: bytes) -> None:
        self._proposals.append(entry)
        self._proposal_ids.append(request_id)

    def _traced_entry(self, request_id: bytes, data: bytes) -> bytes:
        """The entry's data with the proposer's trace context inside it, so that whichever member
        persists or applies it (the leader, when this member forwards it) can report spans in that trace."""
        assert self._hooks is not None
        return tracing.attach(request_id, self._hooks.current_context(), data)

    async def _submit(
        self, request_id: bytes, decoded: object, place: Callable[[], int | None], timeout: float | None = None
    ) -> object:
        """Place a proposal tagged `request_id` and wait until it is applied on this member.

        `place` hands the proposal to the core and returns the term the core stamped it with, or queues
        it for the next Ready (returns None; `_flush_proposals` records the stamp then)."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = (future, decoded)
        try:
            term = place()
        except ProposalDropped as exc:
            del self._waiters[request_id]
            self.stats.proposals_failed += 1
            raise NoLeader("no leader") from exc
        if term is not None:
            self._stamps.stamp([request_id], term)
        self._wakeup.set()
        try:
            return await asyncio.wait_for(future, timeout or self._settings.request_timeout)
        except TimeoutError:
            self.stats.proposals_failed += 1
            raise LogTimeout("request timed out") from None
        except LogError:
            self.stats.proposals_failed += 1
            raise
        finally:
            self._waiters.pop(request_id, None)
            self._stamps.forget(request_id)

    async def read_barrier(self) -> None:
        """ReadIndex: learn the leader's commit index after it confirms leadership, then wait until
        this member has applied that far."""
        self._ready_node()
        future = self._reads.add()
        self._wakeup.set()  # the Ready loop starts a round; reads arriving meanwhile join it
        try:
            index = await asyncio.wait_for(future, self._settings.request_timeout)
        except TimeoutError:
            raise LogTimeout("request timed out") from None
        await self._wait_applied(index)

    def status(self) -> LogStatus:
        return LogStatus(
            member_id=self._settings.member_id,
            leader_id=self._leader,
            term=self._term,
            last_index=self._storage.last_index(),
            commit_index=self._commit,
            applied_index=self._state_machine.applied_index,
            storage_bytes=(self._wal.size_bytes if self._wal else 0) + self._snapshots.size_bytes(),
            pending_proposals=len(self._waiters),
        )

    async def transfer_leadership(self, target: int) -> None:
        node = self._ready_node()
        if self._leader != self._settings.member_id:
            raise NotLeader("not leader")
        if target not in node.status().conf_state.voters:
            raise BadTransferee("bad leader transferee")
        node.transfer_leader(target)
        self._wakeup.set()
        deadline = time.monotonic() + self._settings.request_timeout
        while self._leader != target:
            if time.monotonic() > deadline:
                raise LogTimeout("request timed out")
            await asyncio.sleep(self._settings.tick_seconds)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def isolate(self, peers: set[int], inbound: bool = True, outbound: bool = True) -> None:
        """Fault injection for tests: drop Raft traffic from `peers` (inbound) and to them (outbound);
        an empty set heals. One direction only makes an asymmetric partition."""
        self._deaf_to = frozenset(peers) if inbound else frozenset()
        self._mute_to = frozenset(peers) if outbound else frozenset()

    # -- inputs ------------------------------------------------------------------------------------

    def _ready_node(self) -> RawNode:
        if self._failure is not None:
            raise LogFailed(f"storage failed: {self._failure}")
        if self._removed:
            raise LogClosed("the member has been permanently removed from the cluster")
        if self._closed or self._node is None:
            raise LogClosed("the log is closed")
        return self._node

    def _next_id(self) -> bytes:
        return self._settings.member_id.to_bytes(8, "big") + next(self._request_ids).to_bytes(8, "big")

    def _on_message(self, message: Message) -> None:
        if self._node is None or self._closed or message.frm in self._deaf_to:
            return
        if message.type is MessageType.HEARTBEAT_RESP and (sent := self._heartbeats_sent.pop(message.frm, None)):
            self.stats.round_trip(message.frm, time.monotonic() - sent)
        try:
            self._node.step(message)
        except Exception:  # noqa: BLE001 - a bad peer message must not stop the member
            logger.exception("dropping message %s from %d", message.type, message.frm)
            return
        self._wakeup.set()

    def _on_unreachable(self, peer: int) -> None:
        if self._node is not None and not self._closed:
            self._node.report_unreachable(peer)
            self._wakeup.set()

    async def _tick(self) -> None:
        interval = self._settings.tick_seconds
        next_tick = time.monotonic()
        while True:
            # Ticks missed while the loop was busy are dropped, not replayed in a burst: a burst
            # would look like an election timeout to a follower that is merely slow.
            next_tick = max(next_tick + interval, time.monotonic())
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            assert self._node is not None
            self._node.tick()
            self._reads.retry(time.monotonic(), READ_ROUND_RETRY_SECONDS)
            self._wakeup.set()

    def _start_read_round(self) -> None:
        if self._reads.can_start and self._node is not None:
            self._reads.start(self._next_id(), self._node.read_index, time.monotonic(), NoLeader("no leader"))
            self._wakeup.set()

    # -- the Ready loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._ready_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dead Ready loop must not leave requests hanging
            logger.exception("the Raft Ready loop failed; refusing further requests")
            self._failure = exc
            self._fail_waiters(LogFailed(f"raft loop failed: {exc}"))

    async def _ready_loop(self) -> None:
        assert self._node is not None
        node = self._node
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._start_read_round()
            self._flush_proposals()
            while node.has_ready() and self._failure is None:
                ready = node.ready()
                # A leader may replicate while it writes its own log (Raft thesis §10.2.1): a follower's
                # copy counts towards commit, and the leader's messages promise nothing about its disk.
                # Anything else (votes, append acks) waits until the disk has what it promises.
                early = self._may_send_before_persisting(ready)
                if early:
                    self._send(ready.messages)
                # Committed entries this member wrote in earlier Readies are durable here and on a
                # majority: apply them now rather than after this Ready's fsync (as etcd applies beside
                # its WAL writes). Entries this Ready itself appends (a lone voter commits what it appends
                # at once) wait for the disk, and so does everything after a snapshot in the Ready.
                durable, after_persist = _split_durable(ready)
                self._apply(durable)
                if ready.snapshot is None:
                    self._serve_reads(ready)
                incoming = raft_snapshots.split(ready.snapshot.data) if ready.snapshot is not None else None
                try:
                    # A Ready that only moves the commit index has nothing that must be durable (a
                    # restarted member learns the commit index again): skip the trip to the disk thread.
                    if ready.entries or ready.snapshot is not None or ready.must_sync:
                        if self._hooks is None:
                            await loop.run_in_executor(self._disk, self._persist, ready)
                        else:
                            await self._persist_traced(loop, ready, self._hooks)
                except Exception as exc:  # noqa: BLE001 - storage failure: stop taking writes
                    logger.exception("WAL write failed; refusing further writes")
                    self._failure = exc
                    self._fail_waiters(LogFailed(f"storage failed: {exc}"))
                    return
                self._after_persist(ready, incoming)
                if not early:
                    self._send(ready.messages)
                if after_persist:
                    self._apply(after_persist)
                if ready.snapshot is not None or after_persist:
                    self._serve_reads(ready)
                node.advance(ready)
                # Reads that arrived while this Ready was being written share one heartbeat round.
                self._start_read_round()
                self._maybe_snapshot()

    def _flush_proposals(self) -> None:
        if not self._proposals or self._node is None:
            return
        batch, self._proposals = self._proposals, []
        request_ids, self._proposal_ids = self._proposal_ids, []
        try:
            term = self._node.propose_batch(batch)
        except ProposalDropped:
            error = NoLeader("no leader")
            for request_id in request_ids:
                waiter = self._waiters.pop(request_id, None)
                if waiter is not None and not waiter[0].done():
                    waiter[0].set_exception(error)
            return
        self._stamps.stamp(request_ids, term)

    def _may_send_before_persisting(self, ready: Ready) -> bool:
        soft = ready.soft_state
        role = soft.role if soft is not None else self._role
        term_changes = ready.hard_state is not None and ready.hard_state.term != self._term
        return role is Role.LEADER and not term_changes and all(m.type in _LEADER_MESSAGES for m in ready.messages)

    async def _persist_traced(self, loop: asyncio.AbstractEventLoop, ready: Ready, hooks: TraceHooks) -> None:
        """`_persist`, timed, reporting the write to the hooks for each entry that carries a trace."""
        traced = [
            TracedEntry(tracing.split(entry.data)[1] or b"", entry.index, entry.term)
            for entry in ready.entries
            if entry.type is EntryType.NORMAL and tracing.is_traced(entry.data)
        ]
        start = time.time_ns()
        await loop.run_in_executor(self._disk, self._persist, ready)
        if traced:
            synced = ready.must_sync or ready.snapshot is not None
            hooks.persisted(traced, start, time.time_ns(), len(ready.entries), synced)

    def _persist(self, ready: Ready) -> None:
        """On the disk thread: the snapshot, the entries and the hard state, durable before any send."""
        wal = self._wal
        assert wal is not None
        snapshot = ready.snapshot
        if snapshot is not None:
            self._snapshots.save(snapshot.meta.index, snapshot.meta.term, snapshot.data)
            wal.mark_snapshot(snapshot.meta.index, snapshot.meta.term)
        if ready.entries:
            wal.append_entries([_to_wal(entry) for entry in ready.entries])
        if ready.hard_state is not None:
            hard = ready.hard_state
            wal.save_state(wal_records.HardState(hard.term, hard.vote, hard.commit))
        if ready.must_sync or snapshot is not None:
            wal.sync()

    def _after_persist(self, ready: Ready, incoming: tuple[ConfState, Membership, bytes] | None) -> None:
        storage = self._storage
        if ready.snapshot is not None and incoming is not None:
            storage.apply_snapshot(replace(ready.snapshot, data=b""))
            self._stamps.forget_all()  # the entries the snapshot covers are never seen one by one
            _, self._membership, state = incoming
            self._state_machine.restore(state)
            self._snapshot_indexes = [ready.snapshot.meta.index]
            self._membership_changed()
        if ready.entries:
            storage.append(ready.entries)
        if ready.hard_state is not None:
            storage.set_hard_state(ready.hard_state)
            self._term = ready.hard_state.term
            self._commit = ready.hard_state.commit
        if ready.soft_state is not None:
            self._role = ready.soft_state.role
            if ready.soft_state.lead != self._leader:
                logger.info("leader is now %x (term %d)", ready.soft_state.lead, self._term)
                if ready.soft_state.lead:
                    self.stats.leader_changes += 1
                self._reads.requeue()  # a round sent to the old leader may never be answered
            self._leader = ready.soft_state.lead

    def _send(self, messages: tuple[Message, ...]) -> None:
        if self._mute_to:
            messages = tuple(m for m in messages if m.to not in self._mute_to)
        if not messages or self._transport is None:
            return
        plain = [m for m in messages if m.type is not MessageType.SNAP]
        now = time.monotonic()
        for message in plain:
            if message.type is MessageType.HEARTBEAT:
                self._heartbeats_sent.setdefault(message.to, now)
        if plain:
            self._transport.send(plain)
        for message in messages:
            if message.type is MessageType.SNAP:
                task = asyncio.get_running_loop().create_task(self._send_snapshot(message))
                self._snapshot_sends.add(task)
                task.add_done_callback(self._snapshot_sends.discard)

    async def _send_snapshot(self, message: Message) -> None:
        """The core's snapshot carries only metadata; attach the state from the snapshot files."""
        assert message.snapshot is not None and self._node is not None and self._transport is not None
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(self._snapshot_thread, self._snapshots.load_newest)
        if stored is None or stored.index != message.snapshot.meta.index:
            self._node.report_snapshot(message.to, False)
        else:
            full = replace(message.snapshot, data=stored.data)
            self._transport.send([replace(message, snapshot=full)])
            self._node.report_snapshot(message.to, True)
        self._wakeup.set()

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        assert self._node is not None
        apply = self._state_machine.apply
        stamps = self._stamps
        for entry in entries:
            if entry.term > stamps.oldest:
                self._fail_not_applied(stamps.expired(entry.term), entry)
            if entry.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(ConfChange.decode(entry.data))
                apply(entry.index, b"")
                continue
            if not entry.data:
                apply(entry.index, b"")  # a new leader's no-op
                continue
            raw = entry.data
            hooks = None
            if tracing.is_traced(raw):  # carries a trace context: strip it, whether this member traces or not
                request_id, context, data = tracing.split(raw)
                hooks = self._hooks
            else:
                request_id, data = raw[:_REQUEST_ID_BYTES], raw[_REQUEST_ID_BYTES:]
            waiter = self._waiters.pop(request_id, None)
            started = time.perf_counter()
            start_ns = time.time_ns() if hooks is not None else 0
            try:
                result = apply(entry.index, data, waiter[1] if waiter else None)
            except Exception as exc:  # noqa: BLE001 - a bug in apply must not take the member down
                logger.exception("applying entry %d failed", entry.index)
                if waiter and not waiter[0].done():
                    waiter[0].set_exception(exc)
                continue
            if time.perf_counter() - started > SLOW_APPLY_SECONDS:
                self.stats.slow_applies += 1
            if hooks is not None:
                hooks.applied(TracedEntry(context or b"", entry.index, entry.term), start_ns, time.time_ns(), result)
            if waiter and not waiter[0].done():
                waiter[0].set_result(result)

    def _fail_not_applied(self, request_ids: list[bytes], entry: Entry) -> None:
        """Answer the proposals that the entry of a later term proves lost (proposal_stamps.py)."""
        failed = 0
        for request_id in request_ids:
            waiter = self._waiters.pop(request_id, None)
            if waiter is not None and not waiter[0].done():
                waiter[0].set_exception(NotApplied(f"leader changed: not applied (term {entry.term} committed first)"))
                failed += 1
        if failed:
            logger.info("%d pending proposals ruled out by entry %d of term %d", failed, entry.index, entry.term)

    def _serve_reads(self, ready: Ready) -> None:
        self._reads.answer(ready.read_states)
        self._applied_waiters.wake(self._state_machine.applied_index)

    async def _wait_applied(self, index: int) -> None:
        if self._state_machine.applied_index >= index:
            return
        try:
            await asyncio.wait_for(self._applied_waiters.wait_for(index), self._settings.request_timeout)
        except TimeoutError:
            raise LogTimeout("request timed out") from None

    def _fail_waiters(self, error: LogError) -> None:
        for future, _ in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._reads.fail_all(error)
        self._applied_waiters.fail_all(error)


def _split_durable(ready: Ready) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    """The Ready's committed entries this member already holds on disk, and those it may apply only
    once this Ready is written (the ones it appends now, or all of them when it installs a snapshot)."""
    committed = ready.committed_entries
    if ready.snapshot is not None:
        return (), committed
    if not ready.entries or not committed or committed[-1].index < ready.entries[0].index:
        return committed, ()
    first_new = ready.entries[0].index
    cut = next(i for i, entry in enumerate(committed) if entry.index >= first_new)
    return committed[:cut], committed[cut:]


def _to_wal(entry: Entry) -> wal_records.Entry:
    return wal_records.Entry(entry.index, entry.term, bytes((entry.type.value,)) + entry.data)


def _from_wal(entry: wal_records.Entry) -> Entry:
    return Entry(entry.term, entry.index, entry.data[1:], EntryType(entry.data[0]))
