"""etcdctl's `txn` input: compares, a blank line, success operations, a blank line, failure operations.

    mod("key1") > "0"
    value("key2") = "on"

    put key1 "new value"
    get key2 --prefix

    del key1

A compare is `target("key") op "operand"` with target `value`/`val`, `version`/`ver`, `create`/`c`,
`mod`/`m` or `lease` and op `=`, `!=`, `<` or `>`; operands of the integer targets are decimal.
Operations are `get`, `put` and `del` with the flags of the commands of those names. Words may be
double-quoted with Go's escapes (`"a b"`, `"\\x00"`). End of input closes the section being read.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NoReturn

from corral.client import txn as t
from corral.client.ctl.common import EXIT_INVALID_INPUT, CtlError
from corral.client.ctl.kvopts import (
    add_delete_flags,
    add_get_flags,
    add_put_flags,
    delete_options,
    put_options,
    range_options,
)

__all__ = ["TxnRequest", "parse_compare", "parse_op", "read_txn", "split_words", "unquote"]

_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_COMPARE = re.compile(rf"^\s*(\w+)\(\s*{_QUOTED}\s*\)\s*(=|==|!=|<|>)\s*{_QUOTED}\s*$")
_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34, "'": 39}
_TARGETS = {
    "value": "value",
    "val": "value",
    "version": "version",
    "ver": "version",
    "create": "create",
    "c": "create",
    "mod": "mod",
    "m": "mod",
    "lease": "lease",
}


@dataclass
class TxnRequest:
    compares: list[t.Compare] = field(default_factory=list)
    success: list[t.Op] = field(default_factory=list)
    failure: list[t.Op] = field(default_factory=list)


def unquote(body: str) -> bytes:
    """The bytes of a Go double-quoted string's body (`\\n`, `\\"`, `\\xNN`, `\\NNN`, `\\uNNNN`)."""
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("trailing backslash")
        kind = body[i + 1]
        if kind in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[kind])
            i += 2
        elif kind == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif kind in "01234567":
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif kind in "uU":
            size = 4 if kind == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + size], 16)).encode()
            i += 2 + size
        else:
            raise ValueError(f"unknown escape \\{kind}")
    return bytes(out)


def split_words(line: str) -> list[bytes]:
    """A line's words: runs of non-blanks, or double-quoted strings (unquoted)."""
    words = []
    for word in _WORD.findall(line):
        words.append(unquote(word[1:-1]) if len(word) >= 2 and word[0] == word[-1] == '"' else word.encode())
    return words


def parse_compare(line: str) -> t.Compare:
    match = _COMPARE.match(line)
    if match is None:
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    name, raw_key, op, raw_operand = match.groups()
    target = _TARGETS.get(name)
    if target is None:
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown target {name})")
    try:
        key, operand = unquote(raw_key), unquote(raw_operand)
        subject = getattr(t, target)(key)
        value: bytes | int = operand if target == "value" else int(operand.decode(), 10)
    except ValueError:
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None
    compare: t.Compare
    if op in ("=", "=="):
        compare = subject == value
    elif op == "!=":
        compare = subject != value
    elif op == "<":
        compare = subject < value
    else:
        compare = subject > value
    return compare


class _OpParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _op_parser(name: str, add_flags: Callable[[argparse.ArgumentParser], None]) -> _OpParser:
    parser = _OpParser(prog=name, add_help=False, allow_abbrev=False)
    add_flags(parser)
    parser.add_argument("args", nargs="*")
    return parser


_GET = _op_parser("get", add_get_flags)
_PUT = _op_parser("put", add_put_flags)
_DEL = _op_parser("del", add_delete_flags)


def parse_op(line: str) -> t.Op:
    """One operation line (`put k v`, `get k --prefix`, `del k`)."""
    try:
        words = split_words(line)
    except ValueError:
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn request: {line}") from None
    if not words:
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn request: {line}")
    verb, rest = words[0].decode(errors="replace"), [w.decode(errors="surrogateescape") for w in words[1:]]
    try:
        if verb == "get":
            ns = _GET.parse_args(rest)
            key, ropts = range_options(ns, [a.encode(errors="surrogateescape") for a in ns.args])
            return t.get(key, **ropts)
        if verb == "put":
            ns = _PUT.parse_args(rest)
            key, value, popts = put_options(ns, [a.encode(errors="surrogateescape") for a in ns.args], None)
            return t.put(key, value, **popts)
        if verb in ("del", "delete"):
            ns = _DEL.parse_args(rest)
            key, dopts = delete_options(ns, [a.encode(errors="surrogateescape") for a in ns.args])
            return t.delete(key, **dopts)
    except (ValueError, CtlError):
        pass
    raise CtlError(EXIT_INVALID_INPUT, f"invalid txn request: {line}")


def read_txn(lines: Iterator[str], prompt: Callable[[str], None] | None = None) -> TxnRequest:
    """Read the three sections from `lines` (each ends at a blank line or the end of input).

    `prompt` (interactive mode) is called before each section with etcdctl's prompt text.
    """
    request = TxnRequest()
    sections: list[tuple[str, Callable[[str], None]]] = [
        ("compares:", lambda line: request.compares.append(parse_compare(line))),
        ("success requests (get, put, del):", lambda line: request.success.append(parse_op(line))),
        ("failure requests (get, put, del):", lambda line: request.failure.append(parse_op(line))),
    ]
    for title, add in sections:
        if prompt is not None:
            prompt(title)
        for raw in lines:
            line = raw.rstrip("\r\n")
            if not line.strip():
                break
            add(line)
    return request
