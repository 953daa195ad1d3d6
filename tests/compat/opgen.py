"""Seeded random KV operations in etcd's JSON wire form, for the differential test against etcd.

`OpGen(seed).next_op()` gives one `Op` at a time: a path under `/v3/kv/` and a body ready to POST. The keys
come from a small space (`a/0`..`c/9` plus odd bytes such as `\\x00` and `\\xff`), so ops collide on keys all
the time. The generator never creates leases; a non-zero lease id only appears to provoke
`requested lease not found`.

Revisions only mean "past", "current", "future" or "compacted" relative to the store, so the generator
takes feedback: after sending an op, pass the reference server's answer to `observe()`. etcd answers
deterministically, so one seed against an empty etcd is one reproducible sequence. Without feedback the
generator assumes every op wrote (an upper bound on the revision).

Never generated, on purpose, because etcd 3.4.23 itself dies on them: enum numbers outside the enum
(`"sort_target":7`), and a txn that deletes from-key and puts with ignore_* (see `_avoid_etcd_panic`).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from typing import Any

Json = Any

RANGE = "/v3/kv/range"
PUT = "/v3/kv/put"
DELETE = "/v3/kv/deleterange"
TXN = "/v3/kv/txn"
COMPACTION = "/v3/kv/compaction"

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops

SORT_ORDERS = ("NONE", "ASCEND", "DESCEND")
SORT_TARGETS = ("KEY", "VERSION", "CREATE", "MOD", "VALUE")
COMPARE_RESULTS = ("EQUAL", "GREATER", "LESS", "NOT_EQUAL")
COMPARE_TARGETS = ("VERSION", "CREATE", "MOD", "VALUE", "LEASE")
# The Compare field that carries the operand for each target.
COMPARE_FIELDS = {
    "VERSION": "version",
    "CREATE": "create_revision",
    "MOD": "mod_revision",
    "VALUE": "value",
    "LEASE": "lease",
}

PREFIXES = (b"a/", b"b/", b"c/")
PLAIN_KEYS = tuple(p + str(i).encode() for p in PREFIXES for i in range(10))
# Keys at the edges of the prefix ranges and of the byte order.
ODD_KEYS = (
    b"\x00",
    b"\x00\x01",
    b"\x7f",
    b"\xff",
    b"\xff\xff",
    b"a",
    b"a/",
    b"a/\x00",
    b"a/\xff",
    b"b0",
    b"c/\xff\x00",
)
VALUES = (b"", b"x", b"y", b"xx", b"hello", b"\x00", b"\xff\xfe", b"abcabcabcabc")
MISSING_LEASES = (12345, 7, 0x7FFFFFFFFFFFFFFF)


def enc(data: bytes) -> str:
    """Bytes as etcd's JSON carries them: standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def dec(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def prefix_end(prefix: bytes) -> bytes:
    """The client rule for a prefix's range_end: drop trailing 0xff, add one to the last byte, else "\\0"."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def camel(name: str) -> str:
    """The lowerCamel JSON alias that etcd's decoder also accepts (`range_end` -> `rangeEnd`)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True, slots=True)
class Op:
    """One request. `raw`, when set, is sent verbatim instead of `body` (for malformed JSON).

    `loose_error`: the expected error text is Go's JSON decoder message, which a Python server need not
    reproduce word for word; the comparison then checks only the HTTP status and the gRPC code.
    """

    path: str
    body: Json = None
    raw: bytes | None = None
    loose_error: bool = False
    label: str = ""
    method: str = "POST"

    def content(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode()

    def request(self) -> Json:
        """The request as the server should understand it (None when it is not a JSON object)."""
        if self.raw is None:
            return self.body
        try:
            value = json.JSONDecoder().raw_decode(self.raw.decode("utf-8", "replace").lstrip())[0]
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class OpGen:
    """A reproducible stream of KV operations; see the module docstring."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.seed = seed
        self.index = 0
        self.revision = 1  # the store's current revision, as last reported
        self.compacted = 0  # the last successful compaction revision
        self.fed = False
        # What standalone puts taught us, so compares and ignore_* sometimes hit.
        self.mods: dict[bytes, int] = {}
        self.values: dict[bytes, bytes] = {}
        # One txn over the op limit, early in every sequence. It comes from its own Random, so the main
        # stream is unaffected, and the first n ops of a seed are the same for every n (for replays).
        side = random.Random(seed ^ 0x5EED)
        self.too_many_at = side.randrange(20, 200)
        self.too_large_at = side.randrange(200, 400)  # likewise, one request over --max-request-bytes
        self.side = side

    # ---- driving -------------------------------------------------------------------------------------

    def next_op(self) -> Op:
        index = self.index
        self.index += 1
        if index == self.too_many_at:
            return self._too_many_ops()
        if index == self.too_large_at:
            return self._too_large()
        makers = (
            self._put,
            self._range,
            self._delete,
            self._txn,
            self._compaction,
            self._big_txn,
            self._quirk,
        )
        op = self.rnd.choices(makers, weights=(30, 30, 9, 22, 2, 0.4, 3))[0]()
        if not self.fed:
            self.revision += 1
        return op

    def observe(self, op: Op, status: int, body: Json) -> None:
        """Learn the revision, the compaction point and put results from the reference server's answer."""
        self.fed = True
        if status != 200 or not isinstance(body, dict):
            return
        revision = body.get("header", {}).get("revision")
        if revision is not None:
            self.revision = int(revision)
        request = op.request()
        if not isinstance(request, dict):
            return
        if op.path == COMPACTION:
            self.compacted = max(self.compacted, int(request.get("revision") or 0))
        elif op.path == PUT and isinstance(request.get("key"), str):
            key = dec(request["key"])
            self.mods[key] = self.revision
            if not request.get("ignore_value"):
                self.values[key] = dec(request.get("value") or "")

    # ---- small choices -------------------------------------------------------------------------------

    def _chance(self, p: float) -> bool:
        return self.rnd.random() < p

    def _key(self) -> bytes:
        r = self.rnd.random()
        if r < 0.35:
            return self.rnd.choice(PLAIN_KEYS[:5])  # a hot set: high versions, many ties
        if r < 0.85:
            return self.rnd.choice(PLAIN_KEYS)
        return self.rnd.choice(ODD_KEYS)

    def _value(self) -> bytes:
        if self._chance(0.8):
            return self.rnd.choice(VALUES)
        return bytes(self.rnd.randrange(256) for _ in range(self.rnd.randint(1, 12)))

    def _int(self, n: int) -> Json:
        """int64 as etcd prints it (a string), or sometimes as a bare JSON number, which it also reads."""
        return n if self._chance(0.15) else str(n)

    def _enum(self, names: tuple[str, ...], name: str) -> Json:
        return names.index(name) if self._chance(0.15) else name

    def _name(self, field: str) -> str:
        return camel(field) if self._chance(0.05) else field

    def _span(self, weights: tuple[float, ...]) -> tuple[bytes, bytes | None]:
        """A key and range_end: single key, prefix, from-key, all keys, end <= key, or an interval."""
        modes = ("single", "prefix", "from", "all", "inverted", "interval")
        mode = self.rnd.choices(modes, weights=weights)[0]
        if mode == "single":
            return self._key(), (b"" if self._chance(0.1) else None)
        if mode == "prefix":
            prefix = self.rnd.choice((*PREFIXES, *PREFIXES, b"a", b"\xff", b"\x00", self._key()))
            return prefix, prefix_end(prefix)
        if mode == "from":
            return self._key(), b"\x00"
        if mode == "all":
            return b"\x00", b"\x00"
        lo, hi = sorted((self._key(), self._key()))
        if mode == "inverted":
            return hi, lo  # end <= key: an empty result, not an error
        return lo, hi

    def _read_revision(self, risky: bool) -> int | None:
        """None (absent), 0, current, a readable past revision, or (if risky) compacted/future/negative."""
        cur, comp = self.revision, self.compacted
        r = self.rnd.random()
        if r < 0.5:
            return None
        if r < 0.55:
            return 0
        if r < 0.65:
            return cur
        if r < 0.7 and comp:
            return comp  # exactly the compaction point still reads
        if r < 0.85 or not risky:
            return self.rnd.randint(max(comp, 1), cur)
        if r < 0.9 and comp > 1:
            return self.rnd.randint(1, comp - 1)
        if r < 0.96:
            return cur + self.rnd.randint(1, 3)
        return -self.rnd.randint(1, 3)

    # ---- request bodies ------------------------------------------------------------------------------

    def _range_body(self, risky: bool = True) -> dict[str, Json]:
        key, end = self._span((40, 20, 10, 8, 5, 17))
        body: dict[str, Json] = {"key": enc(key)}
        if end is not None:
            body[self._name("range_end")] = enc(end)
        if self._chance(0.35):
            body["limit"] = self._int(self.rnd.choice((0, 1, 1, 2, 3, 5, -1, -3, 100)))
        revision = self._read_revision(risky)
        if revision is not None:
            body["revision"] = self._int(revision)
        if self._chance(0.4):
            body[self._name("sort_order")] = self._enum(SORT_ORDERS, self.rnd.choice(SORT_ORDERS))
        if self._chance(0.45):
            body[self._name("sort_target")] = self._enum(SORT_TARGETS, self.rnd.choice(SORT_TARGETS))
        if self._chance(0.15):
            body[self._name("keys_only")] = True
        if self._chance(0.1):
            body[self._name("count_only")] = True
        for field in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
            if self._chance(0.07):
                body[self._name(field)] = self._int(self.rnd.randint(0, self.revision + 1))
        if self._chance(0.05):
            body["serializable"] = True
        if self._chance(0.03) and "keysOnly" not in body:
            body["keys_only"] = False  # zero values given explicitly
            body["limit"] = "0"
        if self._chance(0.02):
            body["no_such_field"] = {"ignored": [1, 2]}
        return body

    def _put_body(self, special_rate: float) -> dict[str, Json]:
        key = self._key()
        body: dict[str, Json] = {"key": enc(key)}
        if self._chance(0.92):
            value = self._value() if self._chance(0.7) else self.values.get(key, self._value())
            if value or self._chance(0.3):
                body["value"] = enc(value)
        if self._chance(0.3):
            body[self._name("prev_kv")] = True
        if self._chance(special_rate):
            kind = self.rnd.choice(("ignore_value", "ignore_lease", "missing_lease", "zero_lease"))
            if kind == "ignore_value":
                body[self._name("ignore_value")] = True
                if self._chance(0.7):
                    body.pop("value", None)  # else "value is provided" (unless the value is empty)
            elif kind == "ignore_lease":
                body[self._name("ignore_lease")] = True
                if self._chance(0.25):  # a non-zero lease here: "lease is provided"
                    body["lease"] = self._int(self.rnd.choice((0, *MISSING_LEASES)))
            elif kind == "missing_lease":
                body["lease"] = self._int(self.rnd.choice(MISSING_LEASES))
            else:
                body["lease"] = self._int(0)
        if self._chance(0.03) and "ignore_value" not in body and "ignoreValue" not in body:
            body["ignore_value"] = True
            body["ignore_lease"] = True
            body.pop("value", None)
            body.pop("lease", None)
        return body

    def _delete_body(self) -> dict[str, Json]:
        key, end = self._span((65, 12, 3, 0.5, 5, 8))
        body: dict[str, Json] = {"key": enc(key)}
        if end is not None:
            body[self._name("range_end")] = enc(end)
        if self._chance(0.4):
            body[self._name("prev_kv")] = True
        return body

    def _compare(self) -> dict[str, Json]:
        target = self.rnd.choice(COMPARE_TARGETS)
        result = self.rnd.choice(COMPARE_RESULTS)
        key = self._key()
        cmp: dict[str, Json] = {}
        if result != "EQUAL" or self._chance(0.7):
            cmp["result"] = self._enum(COMPARE_RESULTS, result)
        if target != "VERSION" or self._chance(0.7):
            cmp["target"] = self._enum(COMPARE_TARGETS, target)
        cmp["key"] = enc(key)
        if self._chance(0.2):
            prefix = self.rnd.choice((*PREFIXES, key))
            cmp[self._name("range_end")] = enc(self.rnd.choice((prefix_end(prefix), b"\x00")))
            cmp["key"] = enc(prefix)
        field = COMPARE_FIELDS[target]
        if self._chance(0.08):
            field = self.rnd.choice(tuple(COMPARE_FIELDS.values()))  # a mismatched operand counts as 0
        if self._chance(0.04):
            return cmp  # no operand at all
        if field == "version":
            cmp[field] = self._int(self.rnd.choice((0, 0, 1, 1, 2, 3, 5)))
        elif field in ("create_revision", "mod_revision"):
            known = self.mods.get(key)
            n = known if known is not None and self._chance(0.5) else self.rnd.randint(0, self.revision + 1)
            cmp[self._name(field)] = self._int(n)
        elif field == "value":
            known_value = self.values.get(key)
            v = known_value if known_value is not None and self._chance(0.5) else self._value()
            cmp[field] = enc(v)
        else:
            cmp[field] = self._int(0 if self._chance(0.8) else self.rnd.choice(MISSING_LEASES))
        return cmp

    def _txn_op(self, depth: int) -> dict[str, Json]:
        kind = self.rnd.choices(
            ("put", "range", "delete", "txn"), weights=(35, 35, 18, 12 if depth < 2 else 0)
        )[0]
        if kind == "put":
            return {self._name("request_put"): self._put_body(special_rate=0.06)}
        if kind == "range":
            return {self._name("request_range"): self._range_body(risky=False)}
        if kind == "delete":
            return {self._name("request_delete_range"): self._delete_body()}
        return {self._name("request_txn"): self._txn_body(depth + 1)}

    def _txn_body(self, depth: int) -> dict[str, Json]:
        body: dict[str, Json] = {}
        n_compare = self.rnd.choices((0, 1, 2, 3), weights=(15, 45, 25, 15))[0]
        if n_compare:
            body["compare"] = [self._compare() for _ in range(n_compare)]
        for branch, sizes, weights in (
            ("success", (0, 1, 2, 3, 4, 6), (10, 25, 25, 20, 12, 8)),
            ("failure", (0, 1, 2, 3), (35, 35, 20, 10)),
        ):
            n = self.rnd.choices(sizes, weights=weights)[0]
            if n or self._chance(0.3):
                body[branch] = [self._txn_op(depth) for _ in range(n)]
        if self._chance(0.12 if depth == 0 else 0.04):
            self._spoil(body)
        return body

    def _spoil(self, txn: dict[str, Json]) -> None:
        """Make one branch (which may or may not be the one that runs) invalid in one of etcd's ways."""
        branch = txn.setdefault(self.rnd.choice(("success", "failure")), [])
        key = self._key()
        at = self.rnd.randint(0, len(branch))
        kind = self.rnd.choice(
            (
                "dup_put",
                "put_under_delete",
                "empty_op",
                "empty_key",
                "bad_revision",
                "missing_lease",
                "ignore_missing",
                "nested_dup",
                "nested_put_under_delete",
                "delete_over_nested_put",
                "empty_compare_key",
            )
        )
        if kind == "dup_put":
            branch.insert(at, {"request_put": {"key": enc(key), "value": enc(b"1")}})
            branch.append({"request_put": {"key": enc(key), "value": enc(b"2")}})
        elif kind == "put_under_delete":
            prefix = self.rnd.choice(PREFIXES)
            branch.insert(
                at, {"request_delete_range": {"key": enc(prefix), "range_end": enc(prefix_end(prefix))}}
            )
            branch.insert(self.rnd.randint(0, len(branch)), {"request_put": {"key": enc(prefix + b"3")}})
        elif kind == "empty_op":
            branch.insert(at, {})
        elif kind == "empty_key":
            request = self.rnd.choice(("request_put", "request_range", "request_delete_range"))
            branch.insert(
                at, {request: {"key": "", "value": enc(b"v")} if request == "request_put" else {"key": ""}}
            )
        elif kind == "bad_revision":
            candidates = [self.revision + self.rnd.randint(1, 3), -1]
            if self.compacted > 1:
                candidates.append(self.rnd.randint(1, self.compacted - 1))
            revision = self.rnd.choice(candidates)
            branch.insert(at, {"request_range": {"key": enc(key), "revision": self._int(revision)}})
        elif kind == "missing_lease":
            branch.insert(
                at, {"request_put": {"key": enc(key), "lease": self._int(self.rnd.choice(MISSING_LEASES))}}
            )
        elif kind == "ignore_missing":
            branch.insert(at, {"request_put": {"key": enc(self.rnd.choice(ODD_KEYS)), "ignore_value": True}})
        elif kind == "nested_dup":
            # A put in this branch and the same key put again inside a nested txn in the same branch.
            inner = {
                "success": [{"request_put": {"key": enc(key)}}],
                "failure": [{"request_put": {"key": enc(key)}}],
            }
            branch.insert(at, {"request_put": {"key": enc(key), "value": enc(b"outer")}})
            branch.append({"request_txn": inner})
        elif kind == "nested_put_under_delete":
            prefix = self.rnd.choice(PREFIXES)
            branch.insert(
                at, {"request_delete_range": {"key": enc(prefix), "range_end": enc(prefix_end(prefix))}}
            )
            nested_branch = self.rnd.choice(("success", "failure"))
            branch.append({"request_txn": {nested_branch: [{"request_put": {"key": enc(prefix + b"7")}}]}})
        elif kind == "delete_over_nested_put":
            nested = {
                "compare": [self._compare()],
                "success": [{"request_put": {"key": enc(key), "value": enc(b"n")}}],
                "failure": [{"request_delete_range": {"key": enc(key), "range_end": enc(b"\x00")}}],
            }
            branch.insert(at, {"request_txn": nested})
            branch.append(
                {"request_delete_range": {"key": enc(key)}}
                if self._chance(0.5)
                else {"request_put": {"key": enc(key)}}
            )
        else:
            txn.setdefault("compare", []).insert(0, {"key": "", "target": "VERSION", "version": "0"})

    # ---- operations ----------------------------------------------------------------------------------

    def _range(self) -> Op:
        return Op(RANGE, self._range_body(), label="range")

    def _put(self) -> Op:
        return Op(PUT, self._put_body(special_rate=0.2), label="put")

    def _delete(self) -> Op:
        return Op(DELETE, self._delete_body(), label="deleterange")

    def _txn(self) -> Op:
        return Op(TXN, _avoid_etcd_panic(self._txn_body(0)), label="txn")

    def _compaction(self) -> Op:
        cur, comp = self.revision, self.compacted
        kind = self.rnd.choices(
            ("past", "current", "future", "repeat", "zero", "below"), weights=(45, 10, 12, 12, 8, 8)
        )[0]
        if kind == "past" and cur > comp + 1:
            revision: int | None = self.rnd.randint(max(comp + 1, cur - 40), cur - 1)
        elif kind == "future":
            revision = cur + self.rnd.randint(1, 3)
        elif kind == "repeat":
            revision = comp
        elif kind == "zero":
            revision = None if self._chance(0.5) else 0
        elif kind == "below" and comp > 1:
            revision = self.rnd.randint(1, comp - 1)
        else:
            revision = cur
        body: dict[str, Json] = {} if revision is None else {"revision": self._int(revision)}
        if self._chance(0.3):
            body["physical"] = True
        return Op(COMPACTION, body, label=f"compaction:{kind}")

    def _big_txn(self) -> Op:
        """A txn at or near the op limit; a nested txn counts against what the outer branch left over."""
        n = self.rnd.randint(MAX_TXN_OPS - 12, MAX_TXN_OPS)
        ops: list[Json] = [
            {"request_range": {"key": enc(self._key()), "count_only": True}} for _ in range(n - 1)
        ]
        if self._chance(0.5):
            inner = [{"request_range": {"key": enc(self._key())}} for _ in range(self.rnd.randint(1, 16))]
            ops.append({"request_txn": {"success": inner}})
        else:
            ops.append({"request_put": {"key": enc(self._key()), "value": enc(b"big")}})
        body: dict[str, Json] = {"success": ops}
        if self._chance(0.5):
            body["compare"] = [
                {"key": enc(self._key()), "target": "VERSION", "result": "GREATER", "version": "-1"}
                for _ in range(self.rnd.randint(1, MAX_TXN_OPS))
            ]
        return Op(TXN, body, label="txn:big")

    def _too_many_ops(self) -> Op:
        n = MAX_TXN_OPS + 1
        keys = [enc(self.side.choice(PLAIN_KEYS)) for _ in range(n)]
        where = self.side.choice(("success", "failure", "compare"))
        if where == "compare":
            body: dict[str, Json] = {"compare": [{"key": key, "version": "0"} for key in keys]}
        else:
            body = {where: [{"request_range": {"key": key}} for key in keys]}
        return Op(TXN, body, label="txn:too-many-ops")

    def _too_large(self) -> Op:
        """Over --max-request-bytes (1.5 MiB): `request is too large`; past the gRPC limit (2 MiB): 429."""
        key = enc(self.side.choice(PLAIN_KEYS))
        kind = self.side.choice(("put", "txn", "grpc-limit"))
        if kind == "put":
            return Op(PUT, {"key": key, "value": enc(b"x" * 1_600_000)}, label="put:too-large")
        if kind == "txn":
            put = {"request_put": {"key": key, "value": enc(b"y" * 1_600_000)}}
            return Op(TXN, {"failure": [put]}, label="txn:too-large")
        # The error text holds the encoded size: 2_200_000 value bytes + 10 bytes of framing for a 3-byte key.
        return Op(PUT, {"key": key, "value": enc(b"z" * 2_200_000)}, label="put:over-grpc-limit")

    def _quirk(self) -> Op:
        """Wire-level oddities: invalid bodies, and valid ones that look odd."""
        k = enc(self._key())
        kind = self.rnd.randrange(42)
        cases: dict[int, Op] = {
            0: Op(RANGE, {}, label="quirk:no-key"),
            1: Op(PUT, {"value": enc(b"x")}, label="quirk:put-no-key"),
            2: Op(DELETE, {"key": "", "range_end": "AA=="}, label="quirk:delete-empty-key"),
            3: Op(RANGE, {"key": "", "range_end": "AA=="}, label="quirk:range-empty-key"),
            4: Op(RANGE, {"key": "a2V5L2E"}, label="quirk:unpadded-base64"),
            5: Op(PUT, {"key": k, "value": "eA"}, label="quirk:unpadded-value"),
            6: Op(RANGE, {"key": "-_8="}, label="quirk:urlsafe-base64"),
            7: Op(RANGE, {"key": k, "keys_only": "true"}, loose_error=True, label="quirk:bool-as-string"),
            8: Op(
                PUT, {"key": k, "value": "eA==", "prev_kv": 1}, loose_error=True, label="quirk:bool-as-number"
            ),
            9: Op(RANGE, {"key": k, "limit": 1.5}, loose_error=True, label="quirk:fractional-int64"),
            10: Op(RANGE, {"key": k, "sort_order": "descend"}, label="quirk:enum-wrong-case"),
            11: Op(
                RANGE,
                raw=b'{"key":"%s","count_only":true} trailing garbage' % k.encode(),
                label="quirk:trailing",
            ),
            12: Op(RANGE, raw=b"", label="quirk:empty-body"),
            13: Op(RANGE, raw=b"null", label="quirk:null-body"),
            14: Op(RANGE, raw=b"[]", loose_error=True, label="quirk:array-body"),
            15: Op(RANGE, raw=b'{"key":"eA==","key":"%s"}' % k.encode(), label="quirk:duplicate-field"),
            16: Op(RANGE, {"key": k, "limit": None, "revision": None}, label="quirk:null-fields"),
            17: Op(COMPACTION, {"revision": "abc"}, loose_error=True, label="quirk:int64-not-a-number"),
            18: Op(
                PUT,
                {"key": k, "lease": self._int(self.rnd.choice(MISSING_LEASES))},
                label="quirk:missing-lease",
            ),
            19: Op(
                TXN,
                {
                    "compare": [{"key": k, "target": "VALUE"}],
                    "success": [{"request_range": {"key": k}}],
                    "failure": [{"request_range": {"key": k, "keys_only": True}}],
                },
                label="quirk:value-no-operand",
            ),
            20: Op(
                TXN, {"success": [{"requestRange": {"key": k, "countOnly": True}}]}, label="quirk:camel-ops"
            ),
            21: Op(RANGE, {"key": k, "sort_target": "value"}, label="quirk:enum-wrong-case-target"),
            # HTTP framing (reference section 1.1).
            22: Op(RANGE, {"key": k}, method="GET", label="quirk:get"),
            23: Op(PUT, {"key": k}, method="PUT", label="quirk:http-put"),
            24: Op("/v3/kv/nope", {"key": k}, label="quirk:unknown-path"),
            25: Op("/v3beta/kv/range", {"key": k, "count_only": True}, label="quirk:v3beta"),
            26: Op("/v3alpha/kv/range", {"key": k}, label="quirk:v3alpha"),
            27: Op(RANGE, raw=b"", method="OPTIONS", label="quirk:options"),
            # More of the JSON mapping (section 1.2).
            28: Op(RANGE, raw=b'{"key":"%s" ' % k.encode(), loose_error=True, label="quirk:truncated"),
            29: Op(
                RANGE,
                raw=b'{"key":"%s","count_only":true}{"key":"eA=="}' % k.encode(),
                label="quirk:two-objects",
            ),
            30: Op(
                RANGE, raw=b' \n\t{"key":"%s","keys_only":true}' % k.encode(), label="quirk:leading-space"
            ),
            31: Op(RANGE, raw=b'"str"', loose_error=True, label="quirk:string-body"),
            32: Op(
                RANGE,
                raw=b'{"key":"%s","count_only":true,"key":null}' % k.encode(),
                label="quirk:null-after-key",
            ),
            33: Op(RANGE, {"key": k, "revision": "9223372036854775807"}, label="quirk:max-int64-revision"),
            34: Op(
                RANGE,
                {"key": k, "range_end": "AA==", "limit": "-9223372036854775808"},
                label="quirk:min-int64-limit",
            ),
            35: Op(
                TXN,
                {
                    "compare": [{"key": k, "version": "9223372036854775807", "result": "LESS"}],
                    "success": [{"request_range": {"key": k, "count_only": True}}],
                },
                label="quirk:max-int64-compare",
            ),
            36: Op(RANGE, {"key": k, "revision": True}, loose_error=True, label="quirk:int64-as-bool"),
            37: Op(RANGE, {"key": 1}, loose_error=True, label="quirk:bytes-as-number"),
            38: Op(RANGE, {"key": k, "sort_order": None, "sort_target": None}, label="quirk:null-enums"),
            39: Op(TXN, {"compare": {"key": k}}, loose_error=True, label="quirk:object-for-array"),
            40: Op(RANGE, {"key": k, "revision": "1e3"}, loose_error=True, label="quirk:exponent-int64"),
            # Both spellings of one field: etcd takes the lowerCamel one, whatever the order.
            41: Op(
                RANGE,
                {"key": k, "range_end": "AA==", "keysOnly": True, "keys_only": False},
                label="quirk:both-spellings",
            ),
        }
        return cases[kind]


# RequestOp field names, lowerCamel aliases included, to their proto names.
REQUEST_KINDS = {
    alias: name
    for name in ("request_put", "request_range", "request_delete_range", "request_txn")
    for alias in (name, camel(name))
}


def _txn_requests(txn: dict[str, Json]) -> list[tuple[str, dict[str, Json]]]:
    """Every (request kind, request) in a txn, nested txns included."""
    found: list[tuple[str, dict[str, Json]]] = []
    for branch in ("success", "failure"):
        for op in txn.get(branch) or []:
            for name, request in op.items():
                kind = REQUEST_KINDS.get(name, name)
                if not isinstance(request, dict):
                    continue
                found.append((kind, request))
                if kind == "request_txn":
                    found.extend(_txn_requests(request))
    return found


def _avoid_etcd_panic(txn: dict[str, Json]) -> dict[str, Json]:
    """Keep etcd 3.4.23 alive: its duplicate-key check misses deletes with range_end "\\0" (from-key), so a
    branch may delete key K from-key and then put K with ignore_value/ignore_lease; the put then finds no K
    while applying, and etcd panics ("unexpected error during txn"). Such txns lose their ignore_* flags."""
    requests = _txn_requests(txn)
    from_key_delete = any(
        kind == "request_delete_range"
        and (request.get("range_end") or request.get("rangeEnd")) == enc(b"\x00")
        for kind, request in requests
    )
    if from_key_delete:
        for kind, request in requests:
            if kind == "request_put":
                for flag in ("ignore_value", "ignore_lease", "ignoreValue", "ignoreLease"):
                    request.pop(flag, None)
    return txn


def generate(seed: int, n_ops: int) -> list[Op]:
    """A sequence without feedback (revisions then assume every op wrote): for looking at what gets made."""
    gen = OpGen(seed)
    return [gen.next_op() for _ in range(n_ops)]


if __name__ == "__main__":
    import sys

    seed, count = (int(arg) for arg in (sys.argv[1:] + ["1", "20"])[:2])
    for op in generate(seed, count):
        print(op.method, op.path, op.content().decode("utf-8", "replace"))
