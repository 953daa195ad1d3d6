"""Go's formatting as etcdctl's output shows it (values checked against etcdctl 3.4's own output)."""

from __future__ import annotations

import pytest
from corral.client.ctl.textfmt import go_duration, go_quote, hex_bytes, human_bytes, parse_duration, table


@pytest.mark.parametrize(
    ("data", "quoted"),
    [
        (b"foo", '"foo"'),
        (b"", '""'),
        (b'a"b\\c', '"a\\"b\\\\c"'),
        (b"line\nnext\ttab", '"line\\nnext\\ttab"'),
        (b"\x00\x7f", '"\\x00\\x7f"'),
        ("é ✓".encode(), '"é ✓"'),
        (b"\xff\xfe", '"\\xff\\xfe"'),
        ("\u200b".encode(), '"\\u200b"'),
    ],
)
def test_go_quote(data: bytes, quoted: str) -> None:
    assert go_quote(data) == quoted


def test_hex_bytes() -> None:
    assert hex_bytes(b"foo") == "\\x66\\x6f\\x6f"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (9, "9 B"),
        (694, "694 B"),
        (20480, "20 kB"),
        (24608, "25 kB"),
        (1_900_000, "1.9 MB"),
        (9_960, "10 kB"),
        (9_940, "9.9 kB"),
        (1_000_000_000, "1.0 GB"),
    ],
)
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.000000250, "250ns"),
        (0.000840281, "840.281µs"),
        (0.001029506, "1.029506ms"),
        (0.0021, "2.1ms"),
        (5.00107106, "5.00107106s"),
        (2.0, "2s"),
        (62.5, "1m2.5s"),
        (3723, "1h2m3s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("2", 2.0), ("250ms", 0.25), ("1m30s", 90.0), ("1.5h", 5400.0), ("10us", 1e-5)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "5s garbage", "ms5"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_table_matches_etcdctl_layout() -> None:
    # etcdctl 3.4's `member list -w table` for one started and one unstarted learner member
    expected = (
        "+------------------+-----------+------+------------------------+------------+\n"
        "|        ID        |  STATUS   | NAME |       PEER ADDRS       | IS LEARNER |\n"
        "+------------------+-----------+------+------------------------+------------+\n"
        "| 2e1259d415f2a040 |   started |  ref | http://127.0.0.1:23800 |      false |\n"
        "| c48406023b90cbaa | unstarted |      | http://127.0.0.1:23842 |       true |\n"
        "+------------------+-----------+------+------------------------+------------+\n"
    )
    rows = [
        ["2e1259d415f2a040", "started", "ref", "http://127.0.0.1:23800", "false"],
        ["c48406023b90cbaa", "unstarted", "", "http://127.0.0.1:23842", "true"],
    ]
    assert table(["ID", "STATUS", "NAME", "PEER ADDRS", "IS LEARNER"], rows) == expected
