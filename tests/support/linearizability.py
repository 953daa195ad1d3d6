"""A linearizability checker for a key -> register history (Wing & Gong / Lowe, memoized as in Porcupine).

Each key is checked on its own (a history of registers is linearizable iff each register's is). Per key, a
depth-first search linearizes operations one at a time in an order that respects real time, remembering every
(set of linearized operations, register state) it has tried so no state is explored twice.

Outcomes: `OK` (result known), `FAILED` (certainly not applied: dropped), `UNKNOWN` (timeout, lost connection:
it may take effect at any time after its call, or never; its return time is +infinity). Unknown and failed
reads say nothing and are dropped. Unknown ops would make the search exponential, so it is cut down in ways
that keep it exact (a brute-force oracle in the tests agrees): values no remaining op can observe (read, or
compare in a CAS) collapse into one; an unknown op is placed only right before a read or CAS that depends on
it; interchangeable unknown ops are tried in call order only, and the memo counts those instead of naming them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

Kind = Literal["write", "read", "cas", "delete"]
State = Hashable  # str (a value), None (absent) or _UNSEEN


class Outcome(Enum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation. `value` is what write/cas stores; `result` is a read's value or a CAS's success."""

    kind: Kind
    key: str
    call: int  # monotonic ns
    ret: int | None  # monotonic ns; ignored (+infinity) when the outcome is UNKNOWN
    outcome: Outcome = Outcome.OK
    value: str | None = None
    expected: str | None = None  # cas: applies iff the key exists with this value (etcd's VALUE compare)
    result: str | bool | None = None
    client: int = 0

    def describe(self, t0: int = 0) -> str:
        """E.g. `c3 cas('k', 'a' -> 'b') = True [12.031, 14.502] ms` (times relative to `t0`)."""
        args = {"write": repr(self.value), "read": "", "cas": f"{self.expected!r} -> {self.value!r}", "delete": ""}
        shown = "?" if self.outcome is not Outcome.OK else repr(self.result) if self.kind in ("read", "cas") else "ok"
        start, end = f"{(self.call - t0) / 1e6:.3f}", "inf" if self.ret is None else f"{(self.ret - t0) / 1e6:.3f}"
        sep = ", " if args[self.kind] else ""
        return f"c{self.client} {self.kind}({self.key!r}{sep}{args[self.kind]}) = {shown} [{start}, {end}] ms"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    key: str | None = None
    explanation: str = ""
    ops_checked: int = 0

    def __bool__(self) -> bool:
        return self.ok


class CheckTimeout(Exception):
    """The search ran past its time budget (neither linearizable nor refuted)."""


_UNSEEN = "\0<unobserved value>"  # stands for every written value no read or CAS can tell apart
_FREE: State = ("\0<free>",)  # `hold` when the last linearized op was not an unknown one


def _step(op: Op, state: State, value: State) -> tuple[bool, State]:
    """The register model: whether `op` (storing `value`, already collapsed) fits `state`, and the next state."""
    if op.kind == "write":
        return True, value
    if op.kind == "delete":
        return True, None
    if op.kind == "read":
        return op.result == state, state
    applies = state is not None and state == op.expected
    if op.outcome is Outcome.UNKNOWN:
        return True, value if applies else state
    return applies == op.result, value if applies else state


def check(
    history: Iterable[Op], initial: dict[str, str] | None = None, budget_s: float | None = None, origin: int = -1
) -> CheckResult:
    """Check every key of `history`; the first key that is not linearizable decides the answer.

    `budget_s` bounds the search (else CheckTimeout); a report gives times relative to `origin` (default: the
    key's first call)."""
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    total = 0
    for key in sorted(by_key):
        result = check_key(key, by_key[key], (initial or {}).get(key), deadline, origin)
        total += result.ops_checked
        if not result.ok:
            return result
    return CheckResult(True, ops_checked=total)


def check_key(
    key: str, ops: list[Op], initial: str | None = None, deadline: float | None = None, origin: int = -1
) -> CheckResult:
    """Search for a linearization of one key's operations (all with `op.key == key`)."""
    ops = sorted(
        (op for op in ops if op.outcome is not Outcome.FAILED and (op.kind != "read" or op.outcome is Outcome.OK)),
        key=lambda op: op.call,
    )
    n = len(ops)
    # Which value each op observes (a read's result, a CAS's expected value), and how many observers each
    # value has left. A value with none left is as good as unobserved: the state is kept as _UNSEEN in the memo.
    observed: list[State] = [
        op.result if op.kind == "read" else op.expected if op.kind == "cas" else _FREE for op in ops
    ]
    alive: dict[State, int] = defaultdict(int)
    for x in observed:
        alive[x] += 1
    alive[_FREE] = alive[_UNSEEN] = 0
    values: list[State] = [op.value if op.value in alive else _UNSEEN for op in ops]
    unknown = [op.outcome is Outcome.UNKNOWN for op in ops]
    # Unknown writes/deletes of a value nobody can observe any more are interchangeable: only the earliest pending
    # one is tried, and the memo counts them instead of naming them. Other unknown ops with equal inputs (`twin`:
    # the latest earlier one) are tried in call order.
    writers: dict[State, int] = defaultdict(int)
    twin: list[int] = [-1] * n
    last_like: dict[tuple[object, ...], int] = {}
    for i, op in enumerate(ops):
        if unknown[i]:
            if op.kind in ("write", "delete"):
                writers[values[i] if op.kind == "write" else None] |= 1 << i
            twin[i] = last_like.get((op.kind, op.expected, values[i]), -1)
            last_like[op.kind, op.expected, values[i]] = i
    dead = 0
    for x, mask in writers.items():
        dead |= mask if not alive[x] else 0

    def canon(x: State) -> State:
        return _UNSEEN if x is not _FREE and not alive.get(x) else x

    def see(i: int, delta: int) -> None:
        nonlocal dead
        x = observed[i]
        if x is not _FREE:
            alive[x] += delta
            if alive[x] == 0 or (delta > 0 and alive[x] == 1):
                dead ^= writers.get(x, 0)

    # Events: call of op i is 2i, its return 2i+1; calls sort before returns at equal times (taken as overlapping).
    inf = float("inf")
    ends = [inf if unknown[i] or op.ret is None else op.ret for i, op in enumerate(ops)]
    events = sorted(range(2 * n), key=lambda e: (ops[e >> 1].call, 0) if e % 2 == 0 else (ends[e >> 1], 1))
    head = 2 * n  # sentinel
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for e in events:
        nxt[last], prv[e], last = e, last, e

    def lift(i: int) -> None:
        for e in (2 * i, 2 * i + 1):
            nxt[prv[e]] = nxt[e]
            if nxt[e] != -1:
                prv[nxt[e]] = prv[e]

    def unlift(i: int) -> None:
        for e in (2 * i + 1, 2 * i):
            nxt[prv[e]] = e
            if nxt[e] != -1:
                prv[nxt[e]] = e

    # Only canonical linearizations are searched. An unknown op that changes nothing can be dropped, and so can
    # one whose effect a write or delete overwrites next; one followed by an op that behaves the same without it
    # can move after that op. So an unknown op goes only where it changes the state, and the next op must be a
    # read or CAS that depends on it (`hold` keeps the state before it; a failed CAS depends on it only if it
    # would have matched that state).
    failed_cas = [op.kind == "cas" and op.outcome is Outcome.OK and not op.result for op in ops]
    memo: set[tuple[int, int, State, State]] = set()
    stack: list[tuple[int, State, State]] = []  # (linearized op, state and hold before it)
    state: State = initial
    linearized, hold = 0, _FREE
    best: tuple[list[int], State, int] = ([], state, -1)
    entry = nxt[head]
    steps = 0
    while entry != -1:
        i = entry >> 1
        if entry % 2 == 1 and unknown[i]:
            return CheckResult(True, key, ops_checked=n)  # every op with a known return is linearized
        if entry % 2 == 0:
            if hold is _FREE or (observed[i] is not _FREE and (not failed_cas[i] or hold == observed[i])):
                if not unknown[i]:
                    allowed = True
                elif dead >> i & 1:
                    pending = dead & ~linearized
                    allowed = pending & -pending == 1 << i
                else:
                    allowed = twin[i] == -1 or bool(linearized >> twin[i] & 1)
                fits, after = _step(ops[i], state, values[i]) if allowed else (False, state)
                if fits and not (unknown[i] and canon(after) == canon(state)):
                    held = state if unknown[i] else _FREE
                    see(i, -1)
                    grown = linearized | 1 << i
                    seen_key = (grown & ~dead, (grown & dead).bit_count(), canon(after), canon(held))
                    if seen_key not in memo:
                        memo.add(seen_key)
                        stack.append((i, state, hold))
                        linearized, state, hold = grown, after, held
                        lift(i)
                        entry = nxt[head]
                        continue
                    see(i, +1)
            entry = nxt[entry]
            continue
        # A return: op i must be linearized before anything after it; undo the latest choice instead.
        if hold is _FREE and (best[2] == -1 or (ends[i], len(stack)) > (ends[best[2]], len(best[0]))):
            best = ([j for j, _, _ in stack], state, i)  # the furthest point in time reached, for the report
        if not stack:
            return CheckResult(False, key, _explain(key, ops, best, origin), n)
        steps += 1
        if deadline is not None and steps % 4096 == 0 and time.monotonic() > deadline:
            raise CheckTimeout(f"key {key!r}: no answer within the time budget ({n} ops, {len(memo)} states)")
        j, state, hold = stack.pop()
        see(j, +1)
        linearized &= ~(1 << j)
        unlift(j)
        entry = nxt[2 * j]
    return CheckResult(True, key, ops_checked=n)


def _explain(key: str, ops: list[Op], best: tuple[list[int], State, int], origin: int) -> str:
    """The longest linearizable prefix found, and the op that could not be placed after it."""
    prefix, state, stuck = best
    done = set(prefix)
    deadline = ops[stuck].ret or 0
    pending = [op for i, op in enumerate(ops) if i not in done and i != stuck and op.call <= deadline]
    t0 = ops[0].call if origin < 0 else origin
    lines = [
        f"key {key!r}: not linearizable. After the furthest-reaching linearizable prefix "
        f"({len(prefix)} of {len(ops)} ops),",
        f"  {ops[stuck].describe(t0)}",
        f"cannot take effect; the register then holds {'<unobserved value>' if state == _UNSEEN else repr(state)}.",
        "Last ops of that prefix, in linearization order:",
        *(f"  {ops[i].describe(t0)}" for i in prefix[-6:]),
        "Other ops called by then and not linearized:",
        *([f"  {op.describe(t0)}" for op in pending[:10]] or ["  (none)"]),
    ]
    return "\n".join(lines)
