"""Election recipe: order and fencing, predecessor-only waits, lease loss, cleanup on every error path,
observe, and agreement with the server's own `/v3/election` service."""

from __future__ import annotations

import asyncio
import base64
import threading

import httpx
import pytest
from corral.client import AsyncClient, Client, KeyValue, LeaseLostError
from corral.client.recipes import KeyLost
from corral.client.recipes.election import AsyncElection, Election, NotLeader

from tests.support.servers import ServerProcess


async def _until(predicate: object, timeout: float = 5.0) -> None:
    """Poll an async predicate until true (bounded)."""
    async with asyncio.timeout(timeout):
        while not await predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _contenders_count(election: AsyncElection, n: int) -> None:
    async def enough() -> bool:
        return len(await election.contenders()) >= n

    await _until(enough)


def test_campaign_order_fencing_and_resign(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            name = prefix + "e"
            first, second, third = (AsyncElection(client, name, ttl=5, identifier=f"n{i}") for i in range(3))
            token1 = await first.campaign()
            assert first.fencing_token == first.revision == token1
            waiting2 = asyncio.create_task(second.campaign())
            await _contenders_count(first, 2)
            waiting3 = asyncio.create_task(third.campaign())
            await _contenders_count(first, 3)
            leader = await first.leader()
            assert leader is not None and leader.value == b"n0" and leader.create_revision == token1
            assert [kv.value for kv in await first.contenders()] == [b"n0", b"n1", b"n2"]
            assert leader.key == name.encode() + b"/" + format(first.lease_id, "x").encode()
            await asyncio.sleep(0.2)
            assert not waiting2.done() and not waiting3.done()
            await first.resign()
            token2 = await asyncio.wait_for(waiting2, 5)
            assert token2 > token1 and not waiting3.done()
            assert (await second.leader()).value == b"n1"  # type: ignore[union-attr]
            await first.resign()  # a second resign is a no-op
            await second.resign()
            token3 = await asyncio.wait_for(waiting3, 5)
            assert token3 > token2 and await third.is_leader() and not await second.is_leader()
            await third.resign()
            assert await third.leader() is None and await third.contenders() == []

    asyncio.run(scenario())


def test_waits_for_whoever_is_ahead_not_only_the_first_predecessor(server: ServerProcess, prefix: str) -> None:
    """The middle candidate leaving must not make the last one leader while the first still leads."""

    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            a, b, c = (AsyncElection(client, prefix + "e", ttl=5, identifier=n) for n in "abc")
            await a.campaign()
            waiting_b = asyncio.create_task(b.campaign())
            await _contenders_count(a, 2)
            waiting_c = asyncio.create_task(c.campaign())
            await _contenders_count(a, 3)
            waiting_b.cancel()  # b gives up: its key goes, c now waits on a
            with pytest.raises(asyncio.CancelledError):
                await waiting_b
            await _until(lambda: _count(a, 2))
            await asyncio.sleep(0.3)
            assert not waiting_c.done()
            assert [kv.value for kv in await a.contenders()] == [b"a", b"c"]
            await a.resign()
            await asyncio.wait_for(waiting_c, 5)
            assert (await a.leader()).value == b"c"  # type: ignore[union-attr]
            await c.resign()

    asyncio.run(scenario())


async def _count(election: AsyncElection, n: int) -> bool:
    return len(await election.contenders()) == n


def test_timeout_and_lease_loss_delete_the_candidate(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            leader = AsyncElection(client, prefix + "e", ttl=5, identifier="leader")
            await leader.campaign()
            late = AsyncElection(client, prefix + "e", ttl=5, identifier="late")
            with pytest.raises(TimeoutError):
                await late.campaign(timeout=0.3)
            assert [kv.value for kv in await leader.contenders()] == [b"leader"]
            assert late.revision is None and late.lease_id == 0

            lost: list[LeaseLostError] = []
            doomed = AsyncElection(client, prefix + "e", ttl=2, identifier="doomed", on_lost=lost.append)
            waiting = asyncio.create_task(doomed.campaign())
            await _contenders_count(leader, 2)
            await client.lease_revoke(doomed.lease_id)  # the session dies while it waits
            with pytest.raises(LeaseLostError):
                await asyncio.wait_for(waiting, 5)
            assert doomed.lost.is_set() and len(lost) == 1
            assert [kv.value for kv in await leader.contenders()] == [b"leader"]
            await leader.resign()

    asyncio.run(scenario())


def test_leader_that_loses_its_lease_is_told(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        lost = threading.Event()
        election = Election(client, prefix + "e", ttl=2, on_lost=lambda _: lost.set())
        token = election.campaign("v1")
        assert election.is_leader() and election.fencing_token == token
        election.proclaim("v2")
        assert election.leader().value == b"v2"  # type: ignore[union-attr]
        client.lease_revoke(election.lease_id)
        assert election.lost.wait(5) and lost.is_set()
        assert not election.is_leader() and election.leader() is None
        with pytest.raises(NotLeader):
            election.proclaim("v3")
        election.resign()
        with pytest.raises(NotLeader):
            election.proclaim("v4")


def test_sync_twin_with_caller_lease_and_run(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client, client.lease(5) as lease:
        election = Election(client, prefix + "e", lease=lease, identifier="me")
        seen: list[KeyValue | None] = []
        assert election.run(lambda: seen.append(election.leader())) is None
        assert seen[0] is not None and seen[0].lease == lease.id and seen[0].value == b"me"
        assert election.leader() is None and not lease.lost  # the caller's lease is left alone
        election.campaign()
        with pytest.raises(RuntimeError):
            election.campaign()
        election.resign()


def test_observe_reports_every_change(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            name = prefix + "e"
            watcher = AsyncElection(client, name)
            seen: asyncio.Queue[KeyValue | None] = asyncio.Queue()

            async def observe() -> None:
                async for leader in watcher.observe():
                    await seen.put(leader)

            task = asyncio.create_task(observe())
            assert await asyncio.wait_for(seen.get(), 5) is None  # nobody yet
            a = AsyncElection(client, name, ttl=5)
            b = AsyncElection(client, name, ttl=5)
            await a.campaign("a1")
            assert (await asyncio.wait_for(seen.get(), 5)).value == b"a1"  # type: ignore[union-attr]
            waiting = asyncio.create_task(b.campaign("b1"))
            await _contenders_count(a, 2)
            await a.proclaim("a2")
            assert (await asyncio.wait_for(seen.get(), 5)).value == b"a2"  # type: ignore[union-attr]
            await a.resign()
            await asyncio.wait_for(waiting, 5)
            assert (await asyncio.wait_for(seen.get(), 5)).value == b"b1"  # type: ignore[union-attr]
            await b.resign()
            assert await asyncio.wait_for(seen.get(), 5) is None
            assert seen.empty()  # b's queued key never showed as a change while a led
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


def test_sync_observe_iterates_and_closes(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        election = Election(client, prefix + "e", ttl=5)
        election.campaign("one")
        values: list[bytes | None] = []
        for leader in Election(client, prefix + "e").observe():
            values.append(None if leader is None else leader.value)
            if leader is None:
                break
            if leader.value == b"one":
                election.proclaim("two")
            else:
                election.resign()
        assert values == [b"one", b"two", None]


def _post(url: str, path: str, body: dict[str, object], timeout: float = 10.0) -> dict[str, object]:
    response = httpx.post(url + path, json=body, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def test_agrees_with_the_server_election_service(server: ServerProcess, prefix: str) -> None:
    """A recipe campaigner and a `/v3/election/campaign` campaigner on one name see the same leader."""
    name = prefix + "shared"
    with Client(server.url) as client:
        recipe = Election(client, name, ttl=5)
        recipe.campaign("recipe")
        with client.lease(5) as lease:
            answers: list[dict[str, object]] = []
            body = {"name": _b64(name), "value": _b64("server"), "lease": str(lease.id)}
            campaign = threading.Thread(target=lambda: answers.append(_post(server.url, "/v3/election/campaign", body)))
            campaign.start()
            try:
                for _ in range(100):
                    if len(recipe.contenders()) == 2:
                        break
                    threading.Event().wait(0.05)
                served = _post(server.url, "/v3/election/leader", {"name": _b64(name)})["kv"]
                assert served["key"] == _b64(recipe.key or b"")  # type: ignore[index]
                assert recipe.leader().key == recipe.key  # type: ignore[union-attr]
                assert campaign.is_alive()
                recipe.resign()
                campaign.join(10)
                assert not campaign.is_alive() and answers
            finally:
                recipe.resign()
                campaign.join(10)
            server_leader = answers[0]["leader"]
            served = _post(server.url, "/v3/election/leader", {"name": _b64(name)})["kv"]
            ours = recipe.leader()
            assert ours is not None and ours.value == b"server" and ours.lease == lease.id
            assert served["key"] == server_leader["key"] == _b64(ours.key)  # type: ignore[index]

            # The other way round: the recipe waits for the server-side leader to resign.
            waiting = threading.Thread(target=recipe.campaign, args=("recipe-2",))
            waiting.start()
            for _ in range(100):
                if len(recipe.contenders()) == 2:
                    break
                threading.Event().wait(0.05)
            assert waiting.is_alive()
            _post(server.url, "/v3/election/resign", {"leader": server_leader})
            waiting.join(10)
            assert not waiting.is_alive() and recipe.is_leader()
            served = _post(server.url, "/v3/election/leader", {"name": _b64(name)})["kv"]
            assert served["key"] == _b64(recipe.key or b"")  # type: ignore[index]
            recipe.resign()


def test_candidate_whose_key_was_deleted_does_not_win(server: ServerProcess, prefix: str) -> None:
    """Deleting a waiting candidate's key (an operator, a lease expiring on the server) makes its campaign
    fail when its turn comes, instead of returning as if elected."""

    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            a = AsyncElection(client, prefix + "e", ttl=5, identifier="a")
            b = AsyncElection(client, prefix + "e", ttl=5, identifier="b")
            await a.campaign()
            waiting = asyncio.create_task(b.campaign())
            await _contenders_count(a, 2)
            second = (await a.contenders())[1]
            await client.delete(second.key)
            await a.resign()
            with pytest.raises(KeyLost):
                await asyncio.wait_for(waiting, 5)
            assert await a.leader() is None and b.revision is None

    asyncio.run(scenario())
