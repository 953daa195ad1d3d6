"""The client's KV calls against Corral and a real etcd: the same results from both."""

from __future__ import annotations

import asyncio

import pytest
from corral.client import AsyncClient, Client, CompactedError, FutureRevisionError, InvalidArgument
from corral.client import txn as t

from tests.support.servers import ServerProcess


def test_put_get_delete(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        put = client.put(prefix + "a", "1")
        assert put.revision > 0 and put.prev_kv is None
        again = client.put(prefix + "a", b"\x00\xff", prev_kv=True)
        assert again.prev_kv is not None and again.prev_kv.value == b"1"
        got = client.get(prefix + "a")
        assert got.count == 1 and got.value == b"\x00\xff"
        kv = got.kvs[0]
        assert (kv.key_str, kv.version, kv.create_revision, kv.mod_revision) == (prefix + "a", 2, put.revision,
                                                                                 again.revision)  # fmt: skip
        assert client.get(prefix + "missing").kvs == [] and client.get(prefix + "missing").value is None
        deleted = client.delete(prefix + "a", prev_kv=True)
        assert deleted.deleted == 1 and deleted.prev_kvs[0].value == b"\x00\xff"
        assert client.delete(prefix + "a").deleted == 0


def test_ranges_and_options(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        for name, value in [("a", "3"), ("b", "1"), ("c", "2"), ("d", "0")]:
            client.put(prefix + name, value)
        keys = lambda result: [kv.key_str[len(prefix):] for kv in result]  # noqa: E731
        assert keys(client.get_prefix(prefix)) == ["a", "b", "c", "d"]
        assert keys(client.get(prefix + "b", range_end=prefix + "d")) == ["b", "c"]
        assert keys(client.get(prefix + "c", from_key=True))[:2] == ["c", "d"]
        limited = client.get_prefix(prefix, limit=2)
        assert keys(limited) == ["a", "b"] and limited.more and limited.count == 4
        assert keys(client.get_prefix(prefix, sort_target="VALUE", sort_order="DESCEND")) == ["a", "c", "b", "d"]
        only = client.get_prefix(prefix, keys_only=True)
        assert [kv.value for kv in only] == [b""] * 4
        counted = client.get_prefix(prefix, count_only=True)
        assert counted.count == 4 and counted.kvs == []
        first = client.get(prefix + "a")
        client.put(prefix + "a", "4")
        assert client.get(prefix + "a", revision=first.header.revision).value == b"3"
        assert client.get(prefix + "a", serializable=True).value == b"4"
        assert client.delete_prefix(prefix).deleted == 4


def test_txn(server: ServerProcess, prefix: str) -> None:
    key = prefix + "k"
    with Client(server.url) as client:
        assert client.put_if_not_exists(key, "v1")
        assert not client.put_if_not_exists(key, "v2")
        assert client.replace(key, "v1", "v2") and not client.replace(key, "v1", "v3")
        result = client.txn(
            compare=[t.version(key) == 2, t.value(key) == "v2", t.mod(key) > 0, t.lease(key) == 0],
            success=[t.put(prefix + "other", "x"), t.get(key), t.delete(prefix + "nothing"),
                     t.txn([t.create(key) < 0], failure=[t.get(prefix + "other")])],
            failure=[t.get(key)],
        )  # fmt: skip
        assert result.succeeded and len(result.responses) == 4
        put, got, deleted, nested = result.responses
        assert got.kvs[0].value == b"v2"  # type: ignore[union-attr]
        assert not nested.succeeded and nested.responses[0].kvs[0].value == b"x"  # type: ignore[union-attr]
        failed = client.txn([t.value(key, prefix=True) == "nope"], [t.put(key, "no")], [t.get(key)])
        assert not failed and failed.responses[0].kvs[0].value == b"v2"  # type: ignore[union-attr]


def test_errors_are_typed(server: ServerProcess, prefix: str) -> None:
    with Client(server.url) as client:
        with pytest.raises(InvalidArgument) as empty:
            client.put("", "x")
        assert empty.value.code == 3 and empty.value.message == "etcdserver: key is not provided"
        revision = client.put(prefix + "a", "1").revision
        with pytest.raises(FutureRevisionError):
            client.get(prefix + "a", revision=revision + 1000)
        client.put(prefix + "a", "2")
        client.compact(revision)
        with pytest.raises(CompactedError):
            client.get(prefix + "a", revision=revision - 1)


def test_async_client(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            results = await asyncio.gather(*(client.put(f"{prefix}{i:03}", str(i)) for i in range(50)))
            assert len({r.revision for r in results}) == 50
            listed = await client.get_prefix(prefix)
            assert [kv.value_str for kv in listed] == [str(i) for i in range(50)]
            assert await client.put_if_not_exists(prefix + "new", "x")
            txn = await client.txn([t.value(prefix + "new") == "x"], [t.delete(prefix, prefix=True)])
            assert txn.succeeded and txn.responses[0].deleted == 51  # type: ignore[union-attr]

    asyncio.run(scenario())
