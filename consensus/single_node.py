"""A single-node replicated log: a WAL with group commit, snapshots, and replay on start.

Proposals that arrive while a batch is being written join the next batch, so many requests share one
write and one fdatasync. Entries are applied to the state machine only after they are durable, and a
proposal's future resolves only after its entry is applied, so a client never sees an acknowledged
write that a crash could lose.

Every `snapshot_count` applied entries the state machine is snapshotted to a file (written atomically),
and the WAL is trimmed. The WAL keeps everything after the previous snapshot, so a damaged newest
snapshot can be replaced by the one before it plus the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .log import (
    BadTransferee,
    LogClosed,
    LogFailed,
    LogStatus,
    MemberNotFound,
    MembershipUnsupported,
    NotLearner,
    StateMachine,
)
from .membership import Member
from .snapfile import SnapshotFiles
from .stats import LogStats
from .trace_hooks import TracedEntry, TraceHooks
from .wal import WAL, Entry, HardState, WalCorruptError

logger = logging.getLogger(__name__)

DEFAULT_SNAPSHOT_COUNT = 100_000

_Proposal = tuple[bytes, object, "asyncio.Future[object]"]  # data, the proposer's decoding, its waiter


class SingleNodeLog:
    def __init__(
        self,
        data_dir: Path,
        state_machine: StateMachine,
        member_id: int,
        snapshot_count: int = DEFAULT_SNAPSHOT_COUNT,
        *,
        member: Member | None = None,
        cluster_id: int = 0,
        trace_hooks: TraceHooks | None = None,
    ) -> None:
        # None: tracing is off and the log does no tracing work. With one member nothing is forwarded, so
        # a proposal's trace context stays beside it in memory and never enters the WAL.
        self._hooks = trace_hooks
        self._contexts: dict[asyncio.Future[object], bytes] = {}
        self._wal_dir = data_dir / "member" / "wal"
        self._snap_dir = data_dir / "member" / "snap"
        self._state_machine = state_machine
        self._member_id = member_id
        self._member = member or Member(member_id)
        self.stats = LogStats(leader_changes=1)  # it leads from the start, alone
        self._cluster_id = cluster_id
        self._snapshot_count = snapshot_count
        self._term = 0
        self._last_index = 0
        self._snapshot_indexes: list[int] = []
        self._pending: list[_Proposal] = []
        self._wakeup = asyncio.Event()
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-wal")
        self._snapshot_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-snapshot")
        self._snapshotting: asyncio.Task[None] | None = None
        self._wal: WAL | None = None
        self._snapshots = SnapshotFiles(self._snap_dir)
        self._runner: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the newest snapshot, replay the WAL after it, and start taking proposals."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._disk, self._recover)
        self._runner = asyncio.create_task(self._run(), name="corral-single-node-log")

    def _recover(self) -> None:
        state_machine = self._state_machine
        snapshot = self._snapshots.load_newest()
        if snapshot is not None:
            state_machine.restore(snapshot.data)
            self._snapshot_indexes.append(snapshot.index)
            self._term = snapshot.term
        wal, contents = WAL.open(self._wal_dir)
        if contents.truncated_bytes:
            logger.warning("WAL had a torn or corrupt tail: dropped %d bytes", contents.truncated_bytes)
        entries = contents.entries
        applied = state_machine.applied_index
        if entries and entries[0].index > applied + 1:
            raise WalCorruptError(f"WAL starts at entry {entries[0].index} but the snapshot ends at {applied}")
        for entry in entries:
            state_machine.apply(entry.index, entry.data)
            self._term = max(self._term, entry.term)
        self._last_index = max(applied, entries[-1].index if entries else 0)
        # Each start is a new term, as a lone Raft member would elect itself again.
        self._term = max(self._term, contents.state.term) + 1
        wal.save_state(HardState(self._term, self._member_id, self._last_index))
        wal.sync()
        self._wal = wal
        wal.on_sync = self.stats.wal_fsync.observe
        logger.info("recovered to index %d (term %d, %d entries replayed)", self._last_index, self._term, len(entries))

    async def close(self) -> None:
        self._closed = True
        if self._runner is not None:
            self._wakeup.set()
            await self._runner
            self._runner = None
        if self._snapshotting is not None:
            await self._snapshotting
        for _, _, future in self._pending:
            if not future.done():
                future.set_exception(LogClosed("the log is closed"))
        self._pending.clear()
        self._contexts.clear()
        loop = asyncio.get_running_loop()
        if self._wal is not None:
            await loop.run_in_executor(self._disk, self._wal.close)
        self._disk.shutdown(wait=True)
        self._snapshot_thread.shutdown(wait=True)

    # -- the ReplicatedLog protocol ----------------------------------------------------------------

    async def propose(self, data: bytes, decoded: object | None = None) -> object:
        if self._failure is not None:
            raise LogFailed(f"storage failed: {self._failure}")
        if self._closed:
            raise LogClosed("the log is closed")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self._hooks is not None and (context := self._hooks.current_context()) is not None:
            self._contexts[future] = context
        self._pending.append((data, decoded, future))
        self._wakeup.set()
        return await future

    async def read_barrier(self) -> None:
        """Every acknowledged write is already applied: there is nothing to wait for on one node."""
        if self._failure is not None:
            raise LogFailed(f"storage failed: {self._failure}")

    async def transfer_leadership(self, target: int) -> None:
        """The only member already leads; any other target is not a member."""
        if target != self._member_id:
            raise BadTransferee("bad leader transferee")

    @property
    def term(self) -> int:
        return self._term

    @property
    def cluster_id(self) -> int:
        return self._cluster_id

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def members(self) -> list[Member]:
        return [self._member]

    # A member without Raft cannot grow (Corral's one difference from a one-member etcd here): start
    # members with --initial-cluster to be able to change the membership later.

    async def add_member(self, peer_urls: tuple[str, ...], is_learner: bool) -> Member:
        raise MembershipUnsupported("a single-node member runs without Raft and cannot add members")

    async def remove_member(self, member_id: int) -> None:
        self._refuse_change(member_id)

    async def update_member(self, member_id: int, peer_urls: tuple[str, ...]) -> None:
        self._refuse_change(member_id)

    async def promote_member(self, member_id: int) -> None:
        if member_id != self._member_id:
            raise MemberNotFound("member not found")
        raise NotLearner("only a learner can be promoted")

    def _refuse_change(self, member_id: int) -> None:
        if member_id != self._member_id:
            raise MemberNotFound("member not found")
        raise MembershipUnsupported("a single-node member runs without Raft and cannot change its membership")

    @property
    def snapshot_in_progress(self) -> bool:
        return self._snapshotting is not None

    def status(self) -> LogStatus:
        wal_bytes = self._wal.size_bytes if self._wal is not None else 0
        return LogStatus(
            member_id=self._member_id,
            leader_id=self._member_id,
            term=self._term,
            last_index=self._last_index,
            commit_index=self._state_machine.applied_index,
            applied_index=self._state_machine.applied_index,
            storage_bytes=wal_bytes + self._snapshots.size_bytes(),
            pending_proposals=len(self._pending),
        )

    # -- the write loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and self._failure is None:
                batch, self._pending = self._pending, []
                first = self._last_index + 1
                entries = [Entry(first + i, self._term, data) for i, (data, _, _) in enumerate(batch)]
                traced = self._traced(entries, batch) if self._contexts else None
                start_ns = time.time_ns() if traced else 0
                try:
                    await loop.run_in_executor(self._disk, self._persist, entries)
                except Exception as exc:  # noqa: BLE001 - any storage failure stops writes for good
                    logger.exception("WAL write failed; refusing further writes")
                    self._fail(exc, batch)
                    return
                self._last_index = entries[-1].index
                if traced and self._hooks is not None:
                    written = [t for t, _ in traced.values()]
                    self._hooks.persisted(written, start_ns, time.time_ns(), len(batch), True)
                if traced:
                    self._apply_traced(entries, batch, traced)
                else:
                    self._apply(entries, batch)
                due = self._state_machine.applied_index - self._last_snapshot_index() >= self._snapshot_count
                if due and self._snapshotting is None:
                    self._snapshotting = asyncio.create_task(self._snapshot(), name="corral-snapshot")

    def _persist(self, entries: list[Entry]) -> None:
        assert self._wal is not None
        self._wal.append_entries(entries)
        self._wal.sync()

    def _traced(self, entries: list[Entry], batch: list[_Proposal]) -> dict[int, tuple[TracedEntry, _Proposal]]:
        """The batch's proposals that carry a trace context, by position in the batch."""
        traced: dict[int, tuple[TracedEntry, _Proposal]] = {}
        for i, (entry, proposal) in enumerate(zip(entries, batch, strict=True)):
            context = self._contexts.pop(proposal[2], None)
            if context is not None:
                traced[i] = (TracedEntry(context, entry.index, entry.term), proposal)
        return traced

    def _apply_traced(
        self, entries: list[Entry], batch: list[_Proposal], traced: dict[int, tuple[TracedEntry, _Proposal]]
    ) -> None:
        """`_apply`, one entry at a time, reporting each traced entry's apply to the hooks."""
        assert self._hooks is not None
        for i, (entry, proposal) in enumerate(zip(entries, batch, strict=True)):
            item = traced.get(i)
            if item is None:
                self._apply([entry], [proposal])
                continue
            future = proposal[2]
            start_ns = time.time_ns()
            self._apply([entry], [proposal])
            if future.done() and not future.cancelled() and future.exception() is None:
                self._hooks.applied(item[0], start_ns, time.time_ns(), future.result())

    def _apply(self, entries: list[Entry], batch: list[_Proposal]) -> None:
        apply = self._state_machine.apply
        for entry, (_, decoded, future) in zip(entries, batch, strict=True):
            try:
                result = apply(entry.index, entry.data, decoded)
            except Exception as exc:  # noqa: BLE001 - a bug in apply must not take the loop down
                logger.exception("applying entry %d failed", entry.index)
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)

    def _fail(self, exc: BaseException, batch: list[_Proposal]) -> None:
        self._failure = exc
        self.stats.proposals_failed += len(batch) + len(self._pending)
        self._contexts.clear()
        for _, _, future in [*batch, *self._pending]:
            if not future.done():
                future.set_exception(LogFailed(f"storage failed: {exc}"))
        self._pending.clear()

    # -- snapshots ---------------------------------------------------------------------------------

    def _last_snapshot_index(self) -> int:
        return self._snapshot_indexes[-1] if self._snapshot_indexes else 0

    async def _snapshot(self) -> None:
        """Capture the state here; serialize and save it on the snapshot thread while writes go on;
        then trim the WAL on the disk thread, in order with the appends."""
        loop = asyncio.get_running_loop()
        try:
            source = self._state_machine.snapshot()
            term = self._term
            started = time.perf_counter()
            try:
                saved = await loop.run_in_executor(
                    self._snapshot_thread, self._snapshots.save_chunks, source.index, term, source.chunks()
                )
            finally:
                source.release()
            self.stats.snapshot_save.observe(time.perf_counter() - started)
            previous = self._last_snapshot_index()
            self._snapshot_indexes = [previous, source.index] if previous else [source.index]
            if previous:
                # Keep the WAL back to the previous snapshot: if the newest file turns out damaged, the
                # one before it plus these entries still rebuild the state.
                assert self._wal is not None
                await loop.run_in_executor(self._disk, self._wal.trim_to, previous, term)
            logger.info("snapshot at index %d (%s)", source.index, saved.name)
        except Exception:  # noqa: BLE001 - a failed snapshot leaves the WAL whole; try again later
            logger.exception("snapshot failed")
        finally:
            self._snapshotting = None
