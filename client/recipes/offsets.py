"""Consumer-group offsets, fenced by the group generation, committed many partitions at a time.

    store = AsyncOffsetStore(client)       # keys under /corral/kafka/consumers/{group}/
    generation = await store.new_generation("billing")      # a rebalance: older members are fenced off
    await store.commit("billing", generation, {TopicPartition("orders", 0): 42, TopicPartition("orders", 1): 7})
    committed = await store.fetch("billing", [TopicPartition("orders", 0)])   # {tp: CommittedOffset(42, ...)}
    await store.reset("billing", {TopicPartition("orders", 0): 0})            # the only way back

Guarantee: a commit is one txn, all partitions or none, and only if the group is still at the caller's
generation: a member of an older generation (a zombie after a rebalance) gets `StaleGenerationError` and
writes nothing. By default a commit also never moves an offset backwards: the txn compares every
partition's mod revision with the version the check was made against, so a concurrent commit cannot slip
in between, and a lower offset raises `OffsetRewindError` (again writing nothing). Kafka itself accepts any
offset from the current generation; pass `allow_rewind=True` for that, or `reset()` (an unfenced admin
write) to move a group back on purpose.

Keys (root default `/corral/kafka/`, group ids percent-encoded): `{root}consumers/{group}/generation` = the
generation as a JSON integer; `{root}consumers/{group}/offsets/{topic}/{partition}` = {"offset", "metadata",
"leader_epoch", "generation"} as JSON.

Limit: a non-rewinding commit holds at most 127 partitions (one compare each, plus the generation, within
etcd's --max-txn-ops 128); `allow_rewind=True` commits up to 3,969. The generation is a fencing token, not
a membership protocol: who joins a generation and which partitions each member owns is decided elsewhere.
Fencing protects writes only: a zombie may still read and process records after it lost its partitions.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from corral.client import txn as t
from corral.client._async import AsyncClient
from corral.client._models import KeyValue, RangeResult, TxnResult
from corral.client._sync import Client
from corral.client.recipes._kafka import (
    DEFAULT_ROOT,
    MAX_TXN_OPS,
    MetadataError,
    TopicPartition,
    batched,
    dumps,
    loads,
    normalize_root,
)
from corral.client.recipes.topics import check_name

__all__ = [
    "AsyncOffsetStore",
    "CommittedOffset",
    "OffsetAndMetadata",
    "OffsetConflictError",
    "OffsetRewindError",
    "OffsetStore",
    "StaleGenerationError",
    "TopicPartition",
]

RESET_GENERATION = -1  # recorded as the generation of an offset written by `reset()`


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """What a consumer commits for a partition: the next offset to read, and optional extras."""

    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """A stored offset: what was committed, by which generation, at which revision."""

    offset: int
    metadata: str
    leader_epoch: int | None
    generation: int
    mod_revision: int

    @classmethod
    def decode(cls, kv: KeyValue) -> CommittedOffset:
        data = loads(kv.value)
        epoch = data.get("leader_epoch")
        return cls(int(data["offset"]), str(data.get("metadata") or ""), None if epoch is None else int(epoch),
                   int(data.get("generation", 0)), kv.mod_revision)  # fmt: skip


class StaleGenerationError(MetadataError):
    """The commit came from a generation that is not the group's current one (Kafka's ILLEGAL_GENERATION)."""

    def __init__(self, group: str, given: int, current: int) -> None:
        super().__init__(f"group {group!r} is at generation {current}; a commit from generation {given} is refused")
        self.group = group
        self.given = given
        self.current = current


class OffsetRewindError(MetadataError):
    """The commit would move offsets backwards; `rewinds` maps each such partition to (committed, attempted)."""

    def __init__(self, group: str, rewinds: dict[TopicPartition, tuple[int, int]]) -> None:
        listed = ", ".join(f"{tp} {old} -> {new}" for tp, (old, new) in sorted(rewinds.items()))
        super().__init__(f"group {group!r}: offsets would go backwards ({listed}); nothing was committed")
        self.group = group
        self.rewinds = rewinds


class OffsetConflictError(MetadataError):
    """Other writers kept changing the same keys through every attempt."""


def _entry(value: int | OffsetAndMetadata) -> OffsetAndMetadata:
    entry = value if isinstance(value, OffsetAndMetadata) else OffsetAndMetadata(int(value))
    if entry.offset < 0:
        raise ValueError(f"offset {entry.offset} is negative")
    return entry


def _encode(entry: OffsetAndMetadata, generation: int) -> bytes:
    return dumps({"offset": entry.offset, "metadata": entry.metadata, "leader_epoch": entry.leader_epoch,
                  "generation": generation})  # fmt: skip


def _ranges(result: TxnResult) -> list[RangeResult]:
    return [r for r in result.responses if isinstance(r, RangeResult)]


class AsyncOffsetStore:
    """Commit and fetch a consumer group's offsets; bump its generation to fence off older members."""

    def __init__(self, client: AsyncClient, root: str = DEFAULT_ROOT) -> None:
        self.client = client
        self.prefix = normalize_root(root) + "consumers/"
        # key -> (mod revision, offset) last seen; (0, -1) = absent. Lets a commit go in one round trip.
        self._known: dict[bytes, tuple[int, int]] = {}

    def group_prefix(self, group: str) -> str:
        if not group:
            raise ValueError("the group id must not be empty")
        return f"{self.prefix}{urllib.parse.quote(group, safe='')}/"

    def generation_key(self, group: str) -> str:
        return self.group_prefix(group) + "generation"

    def offset_key(self, group: str, tp: TopicPartition) -> str:
        return f"{self.group_prefix(group)}offsets/{check_name(tp.topic)}/{tp.partition}"

    async def generation(self, group: str) -> int:
        """The group's current generation (0 before the first `new_generation`)."""
        kv = (await self.client.get(self.generation_key(group))).first
        return int(loads(kv.value)) if kv else 0

    async def new_generation(self, group: str, *, attempts: int = 16) -> int:
        """Move the group to its next generation (a rebalance) and return it; older generations are fenced."""
        key = self.generation_key(group)
        kv = (await self.client.get(key)).first
        for _ in range(attempts):
            current = int(loads(kv.value)) if kv else 0
            result = await self.client.txn(
                [t.mod(key) == (kv.mod_revision if kv else 0)], [t.put(key, dumps(current + 1))], [t.get(key)]
            )
            if result.succeeded:
                return current + 1
            kv = _ranges(result)[0].first
        raise OffsetConflictError(f"group {group!r}: the generation kept changing through {attempts} attempts")

    def _fence(self, group: str, generation: int) -> t.Compare:
        key = self.generation_key(group)
        return t.create(key) == 0 if generation == 0 else t.value(key) == dumps(generation)

    async def commit(
        self,
        group: str,
        generation: int,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        *,
        allow_rewind: bool = False,
        attempts: int = 16,
    ) -> int:
        """Commit offsets for many partitions in one txn, fenced by `generation`; returns its revision.

        Raises `StaleGenerationError` if the group moved on, and (unless `allow_rewind`) `OffsetRewindError`
        if any offset is lower than the committed one; either way nothing is written. An equal offset is
        fine (a retried commit).
        """
        entries = {tp: _entry(v) for tp, v in offsets.items()}
        keys = {tp: self.offset_key(group, tp).encode() for tp in entries}
        if not allow_rewind:
            if len(entries) >= MAX_TXN_OPS:
                raise ValueError(f"at most {MAX_TXN_OPS - 1} partitions per commit unless allow_rewind=True")
            unknown = [tp for tp in entries if keys[tp] not in self._known]
            if unknown:
                await self.fetch(group, unknown)
        puts = [t.put(keys[tp], _encode(entry, generation)) for tp, entry in entries.items()]
        for _ in range(attempts):
            compares = [self._fence(group, generation)]
            failure = [t.get(self.generation_key(group))]
            if not allow_rewind:
                rewinds = {tp: (self._known[keys[tp]][1], e.offset) for tp, e in entries.items()
                           if e.offset < self._known[keys[tp]][1]}  # fmt: skip
                if rewinds:
                    raise OffsetRewindError(group, rewinds)
                compares += [t.mod(keys[tp]) == self._known[keys[tp]][0] for tp in entries]
                failure += [t.get(keys[tp]) for tp in entries]
            result = await self.client.txn(compares, puts if not allow_rewind else batched(puts), failure)
            if result.succeeded:
                for tp, entry in entries.items():
                    self._known[keys[tp]] = (result.revision, entry.offset)
                return result.revision
            now, *states = _ranges(result)
            current = int(loads(now.kvs[0].value)) if now.kvs else 0
            if current != generation:
                raise StaleGenerationError(group, generation, current)
            for tp, state in zip(entries, states, strict=True):
                self._remember(keys[tp], state.first)
        raise OffsetConflictError(f"group {group!r}: offsets kept changing through {attempts} attempts")

    async def reset(self, group: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]) -> int:
        """Set offsets unconditionally, backwards too (an admin's reset; no generation fence). Returns the revision.

        As with Kafka's reset tool, do it while the group has no active members: a live member's later
        commit of a lower offset is refused as a rewind.
        """
        entries = {tp: _entry(v) for tp, v in offsets.items()}
        keys = {tp: self.offset_key(group, tp).encode() for tp in entries}
        puts = [t.put(keys[tp], _encode(entry, RESET_GENERATION)) for tp, entry in entries.items()]
        result = await self.client.txn([], batched(puts))
        for tp, entry in entries.items():
            self._known[keys[tp]] = (result.revision, entry.offset)
        return result.revision

    async def fetch(self, group: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, CommittedOffset]:
        """The committed offsets of these partitions (those never committed are absent), from one read."""
        wanted = list(dict.fromkeys(partitions))
        if len(wanted) > MAX_TXN_OPS:
            everything = await self.fetch_all(group)
            for tp in wanted:
                if tp not in everything:
                    self._known[self.offset_key(group, tp).encode()] = (0, -1)
            return {tp: everything[tp] for tp in wanted if tp in everything}
        keys = [self.offset_key(group, tp).encode() for tp in wanted]
        if not keys:
            return {}
        result = await self.client.txn([], [t.get(key) for key in keys])
        found: dict[TopicPartition, CommittedOffset] = {}
        for tp, key, state in zip(wanted, keys, _ranges(result), strict=True):
            committed = self._remember(key, state.first)
            if committed is not None:
                found[tp] = committed
        return found

    async def fetch_all(self, group: str) -> dict[TopicPartition, CommittedOffset]:
        """Every committed offset of the group."""
        prefix = self.group_prefix(group) + "offsets/"
        result = await self.client.get_prefix(prefix)
        found: dict[TopicPartition, CommittedOffset] = {}
        for kv in result.kvs:
            topic, _, partition = kv.key_str[len(prefix) :].rpartition("/")
            committed = self._remember(kv.key, kv)
            if committed is not None:
                found[TopicPartition(topic, int(partition))] = committed
        return found

    def _remember(self, key: bytes, kv: KeyValue | None) -> CommittedOffset | None:
        if kv is None:
            self._known[key] = (0, -1)
            return None
        committed = CommittedOffset.decode(kv)
        self._known[key] = (kv.mod_revision, committed.offset)
        return committed


# -- the blocking twin --------------------------------------------------------------------------------------


class OffsetStore:
    """The blocking twin of `AsyncOffsetStore`, run on `client.portal()`."""

    def __init__(self, client: Client, root: str = DEFAULT_ROOT) -> None:
        self._portal = client.portal()
        self._async = AsyncOffsetStore(self._portal.client, root)

    def generation(self, group: str) -> int:
        return self._portal.call(self._async.generation, group)

    def new_generation(self, group: str, *, attempts: int = 16) -> int:
        return self._portal.call(self._async.new_generation, group, attempts=attempts)

    def commit(
        self,
        group: str,
        generation: int,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        *,
        allow_rewind: bool = False,
        attempts: int = 16,
    ) -> int:
        return self._portal.call(self._async.commit, group, generation, offsets, allow_rewind=allow_rewind,
                                 attempts=attempts)  # fmt: skip

    def reset(self, group: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]) -> int:
        return self._portal.call(self._async.reset, group, offsets)

    def fetch(self, group: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, CommittedOffset]:
        return self._portal.call(self._async.fetch, group, list(partitions))

    def fetch_all(self, group: str) -> dict[TopicPartition, CommittedOffset]:
        return self._portal.call(self._async.fetch_all, group)
