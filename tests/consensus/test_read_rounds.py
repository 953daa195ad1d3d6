"""ReadIndex rounds in the Raft driver: batching, and a lost round asked again rather than waited out."""

from __future__ import annotations

import asyncio

from corral.consensus.log import LogError
from corral.consensus.raft import ReadState
from corral.consensus.read_index import AppliedWaiters, ReadRounds


def test_reads_share_a_round_and_a_lost_round_is_asked_again() -> None:
    async def scenario() -> None:
        rounds = ReadRounds()
        asked: list[bytes] = []
        first, second = rounds.add(), rounds.add()
        rounds.start(b"r1", asked.append, now=0.0, no_leader=LogError("no leader"))
        assert asked == [b"r1"] and not rounds.can_start
        third = rounds.add()  # arrives while r1 is out: waits for the next round
        assert not rounds.retry(now=0.4, after=0.5)
        assert rounds.retry(now=0.6, after=0.5)  # r1 went to a leader that lost office: ask again
        rounds.start(b"r2", asked.append, now=0.6, no_leader=LogError("no leader"))
        rounds.answer([ReadState(index=5, context=b"r1")])  # a late answer to the abandoned round
        assert not first.done()
        rounds.answer([ReadState(index=7, context=b"r2")])
        assert [await f for f in (first, second, third)] == [7, 7, 7]

    asyncio.run(scenario())


def test_a_leader_change_requeues_the_round_in_flight() -> None:
    async def scenario() -> None:
        rounds = ReadRounds()
        read = rounds.add()
        rounds.start(b"r1", lambda context: None, now=0.0, no_leader=LogError("no leader"))
        rounds.requeue()
        assert rounds.can_start and not read.done()

    asyncio.run(scenario())


def test_applied_waiters_wake_in_index_order() -> None:
    async def scenario() -> None:
        waiters = AppliedWaiters()
        late, early = waiters.wait_for(9), waiters.wait_for(3)
        waiters.wake(5)
        assert early.done() and not late.done()
        waiters.wake(9)
        assert late.done()

    asyncio.run(scenario())
