"""`NotApplied`: a proposal a leader change has ruled out is answered at once, and is indeed never applied.

Unit tests of `ProposalStamps`, then three in-process Raft members on loopback (short ticks): the leader
stops while a follower has proposals in flight, and a leader is cut off while it has its own pending.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from corral.consensus.log import NotApplied
from corral.consensus.membership import Member
from corral.consensus.proposal_stamps import ProposalStamps
from corral.consensus.raft_driver import NoLeader, RaftNode, RaftSettings

from tests.consensus.test_single_node import Recorder
from tests.consensus.test_trace_entries import _free_port

TICK = 0.02
ELECTION_TICKS = 10  # an election timeout of 0.2-0.4 s
REQUEST_TIMEOUT = 10.0  # far longer than any answer below may take


def test_stamps_rule_out_only_older_proposals() -> None:
    stamps = ProposalStamps()
    stamps.stamp([b"a", b"b"], 3)
    stamps.stamp([b"c"], 4)
    stamps.stamp([b"never"], 0)  # no stamp: never ruled out
    assert (len(stamps), stamps.oldest) == (3, 3)
    assert stamps.expired(3) == []  # an entry of the stamp's own term proves nothing
    stamps.forget(b"a")  # answered meanwhile
    assert stamps.expired(4) == [b"b"]
    assert (len(stamps), stamps.oldest) == (1, 4)
    assert stamps.expired(9) == [b"c"]
    assert len(stamps) == 0 and stamps.expired(10) == []
    stamps.stamp([b"d"], 5)
    stamps.forget_all()  # a snapshot was installed: nothing can be judged
    assert stamps.expired(6) == []


class _Cluster:
    def __init__(self, base: Path) -> None:
        ids = (0x11, 0x22, 0x33)
        peers = {i: f"http://127.0.0.1:{_free_port()}" for i in ids}
        members = tuple(Member(i, f"n{n}", (peers[i],)) for n, i in enumerate(ids, 1))
        self.machines = {i: Recorder() for i in ids}
        self.nodes = {
            i: RaftNode(
                base / f"n{i:x}", self.machines[i],
                RaftSettings(
                    member_id=i, initial_members=members, listen_peer_url=peers[i], snapshot_count=100_000,
                    cluster_id=7, tick_seconds=TICK, election_ticks=ELECTION_TICKS, request_timeout=REQUEST_TIMEOUT,
                ),
            )
            for i in ids
        }  # fmt: skip

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes.values()))

    async def close(self) -> None:
        await asyncio.gather(*(node.close() for node in self.nodes.values()), return_exceptions=True)

    async def leader(self, among: list[int], timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = {self.nodes[i].status().leader_id for i in among}
            if len(leaders) == 1 and (leader := leaders.pop()) in among:
                return leader
            await asyncio.sleep(TICK)
        raise AssertionError(f"no leader among {among}")


async def _propose(node: RaftNode, data: bytes) -> tuple[bytes, str, float]:
    try:
        await node.propose(data)
        outcome = "applied"
    except NotApplied:
        outcome = "not applied"
    except NoLeader:
        outcome = "no leader"  # refused before the core took it (mid-election): not applied either
    except Exception as exc:  # noqa: BLE001 - recorded, and the test fails on it
        outcome = repr(exc)
    return data, outcome, time.monotonic()


def test_a_followers_proposals_are_answered_soon_after_its_leader_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        cluster = _Cluster(tmp_path)
        await cluster.start()
        try:
            ids = list(cluster.nodes)
            leader = await cluster.leader(ids)
            follower = next(i for i in ids if i != leader)
            node = cluster.nodes[follower]
            tasks = []
            for i in range(400):  # a stream of proposals through the follower; the leader stops midway
                tasks.append(asyncio.create_task(_propose(node, b"w%d" % i)))
                if i == 200:
                    stopped = time.monotonic()
                    await cluster.nodes[leader].close()
                await asyncio.sleep(0.001)
            results = await asyncio.gather(*tasks)
            survivors = [i for i in ids if i != leader]
            await cluster.leader(survivors)
            # Whatever is applied anywhere reaches the follower too: wait for it to catch up.
            await cluster.nodes[follower].propose(b"barrier")
            outcomes = {outcome for _, outcome, _ in results}
            assert outcomes <= {"applied", "not applied", "no leader"}, outcomes
            assert "not applied" in outcomes  # the stop left some in flight
            latest = max(done for _, _, done in results)
            # An election takes 0.2-0.4 s here; the request timeout is 10 s.
            assert latest - stopped < 3.0, latest - stopped
            for i in survivors:
                applied = set(cluster.machines[i].applied)
                for data, outcome, _ in results:
                    assert (data in applied) == (outcome == "applied"), (i, data, outcome)
        finally:
            await cluster.close()

    asyncio.run(scenario())


def test_a_cut_off_leaders_own_proposals_are_answered_once_it_hears_the_new_leader(tmp_path: Path) -> None:
    async def scenario() -> None:
        cluster = _Cluster(tmp_path)
        await cluster.start()
        try:
            ids = list(cluster.nodes)
            old = await cluster.leader(ids)
            others = [i for i in ids if i != old]
            cluster.nodes[old].isolate(set(others))
            tasks = [asyncio.create_task(_propose(cluster.nodes[old], b"cut%d" % i)) for i in range(20)]
            await cluster.leader(others)
            await cluster.nodes[others[0]].propose(b"new term")
            healed = time.monotonic()
            cluster.nodes[old].isolate(set())
            results = await asyncio.gather(*tasks)
            assert {outcome for _, outcome, _ in results} == {"not applied"}
            assert max(done for _, _, done in results) - healed < 3.0
            for i in ids:
                assert not {data for data, _, _ in results} & set(cluster.machines[i].applied)
        finally:
            await cluster.close()

    asyncio.run(scenario())
