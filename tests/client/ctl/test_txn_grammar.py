"""etcdctl's txn grammar: compares, operations, sections and their errors (no server needed)."""

from __future__ import annotations

import pytest
from corral.client import txn as t
from corral.client.ctl.common import EXIT_INVALID_INPUT, CtlError
from corral.client.ctl.txn_grammar import parse_compare, parse_op, read_txn, split_words, unquote


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('mod("k") > "0"', t.mod("k") > 0),
        ('m("k") < "100"', t.mod("k") < 100),
        ('value("k") = "v"', t.value("k") == "v"),
        ('val("k") != "v w"', t.value("k") != "v w"),
        ('version("k") = "4"', t.version("k") == 4),
        ('ver("k") > "1"', t.version("k") > 1),
        ('create("k") = "2"', t.create("k") == 2),
        ('c("k") = "0"', t.create("k") == 0),
        ('lease("k") = "1234"', t.lease("k") == 1234),
        ('  mod("a b")>"0"  ', t.mod("a b") > 0),
        ('value("\\x00k") = "\\n"', t.value(b"\x00k") == b"\n"),
    ],
)
def test_compare(line: str, expected: t.Compare) -> None:
    assert parse_compare(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('bogus("foo") > "0"', 'malformed comparison: bogus("foo") > "0" (unknown target bogus)'),
        ("mod(foo) > 0", "malformed comparison: mod(foo) > 0"),
        ('mod("foo") >= "0"', 'malformed comparison: mod("foo") >= "0"'),
        ('mod("foo") > "zz"', 'invalid txn compare request: mod("foo") > "zz"'),
    ],
)
def test_bad_compare(line: str, message: str) -> None:
    with pytest.raises(CtlError) as caught:
        parse_compare(line)
    assert (caught.value.code, caught.value.message) == (EXIT_INVALID_INPUT, message)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("put k v", t.put("k", "v")),
        ('put "sp ace" "v v"', t.put("sp ace", "v v")),
        ("put k v --prev-kv", t.put("k", "v", prev_kv=True)),
        ("put k --ignore-value", t.put("k", "", ignore_value=True)),
        ("put k v --lease=1f", t.put("k", "v", lease=0x1F)),
        ("put k -1", t.put("k", "-1")),
        ("get k", t.get("k")),
        ("get --prefix a", t.get("a", prefix=True)),
        ("get a c", t.get("a", range_end="c")),
        ("get a --from-key --limit 2 --rev 5", t.get("a", from_key=True, limit=2, revision=5)),
        (
            "get a --prefix --sort-by=MODIFY --order=DESCEND",
            t.get("a", prefix=True, sort_target="MOD", sort_order="DESCEND"),
        ),
        ("get a --keys-only", t.get("a", keys_only=True)),
        ("del k", t.delete("k")),
        ("delete k --prefix --prev-kv", t.delete("k", prefix=True, prev_kv=True)),
    ],
)
def test_op(line: str, expected: t.Op) -> None:
    assert parse_op(line) == expected


@pytest.mark.parametrize("line", ["frob a", "put", "get", "put k v w", "get a b --prefix", "del a --bogus", 'put "k'])
def test_bad_op(line: str) -> None:
    with pytest.raises(CtlError) as caught:
        parse_op(line)
    assert (caught.value.code, caught.value.message) == (EXIT_INVALID_INPUT, f"invalid txn request: {line}")


def test_sections_end_at_blank_lines_or_end_of_input() -> None:
    lines = iter(['mod("k") > "0"\n', 'value("k") = "v"\n', "\n", "put k ok\n", "get k\n", "\n", "put k fail\n"])
    request = read_txn(lines)
    assert request.compares == [t.mod("k") > 0, t.value("k") == "v"]
    assert request.success == [t.put("k", "ok"), t.get("k")]
    assert request.failure == [t.put("k", "fail")]


def test_empty_sections_and_prompts() -> None:
    prompts: list[str] = []
    request = read_txn(iter(["\n", "put a b\n", "\n", "\n"]), prompts.append)
    assert (request.compares, request.success, request.failure) == ([], [t.put("a", "b")], [])
    assert prompts == ["compares:", "success requests (get, put, del):", "failure requests (get, put, del):"]


def test_words_and_go_escapes() -> None:
    assert split_words('put "a \\"b\\"" c\\d "\\x41\\101\\u00e9"') == [b"put", b'a "b"', b"c\\d", "AAé".encode()]
    assert unquote("\\t\\\\") == b"\t\\"
