"""The linearizability checker accepts what a register can do and rejects what it cannot."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.support.linearizability import CheckTimeout, Op, Outcome, check

OK, FAILED, UNKNOWN = Outcome.OK, Outcome.FAILED, Outcome.UNKNOWN


def w(value: str, call: int, ret: int | None, outcome: Outcome = OK, key: str = "k", client: int = 0) -> Op:
    return Op("write", key, call, ret, outcome, value=value, client=client)


def r(result: str | None, call: int, ret: int, key: str = "k", client: int = 0) -> Op:
    return Op("read", key, call, ret, result=result, client=client)


def cas(
    expected: str, new: str, result: bool | None, call: int, ret: int | None, outcome: Outcome = OK, key: str = "k"
) -> Op:
    return Op("cas", key, call, ret, outcome, value=new, expected=expected, result=result)


def delete(call: int, ret: int | None, outcome: Outcome = OK, key: str = "k") -> Op:
    return Op("delete", key, call, ret, outcome)


def test_an_empty_history_and_a_read_of_an_absent_key_are_linearizable() -> None:
    assert check([])
    assert check([r(None, 0, 1)])
    assert not check([r("x", 0, 1)])
    assert check([r("x", 0, 1)], initial={"k": "x"})


def test_a_stale_read_after_a_completed_write_is_rejected() -> None:
    history = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]
    result = check(history)
    assert not result and result.key == "k"
    assert "read('k') = 'a'" in result.explanation and "'b'" in result.explanation
    assert check([w("a", 0, 1), w("b", 2, 3), r("b", 4, 5)])


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in ("a", "b"):
        assert check([w("a", 0, 1), w("b", 2, 6), r(seen, 3, 4)])
    assert not check([w("a", 0, 1), w("b", 2, 6), r(None, 3, 4)])


def test_two_readers_seeing_concurrent_writes_in_contradictory_orders_are_rejected() -> None:
    writes = [w("a", 0, 100), w("b", 0, 100)]
    one_order = [r("a", 10, 20, client=1), r("b", 30, 40, client=1)]
    assert check(writes + one_order + [r("a", 10, 20, client=2), r("b", 30, 40, client=2)])
    assert not check(writes + one_order + [r("b", 10, 20, client=2), r("a", 30, 40, client=2)])
    # A value cannot come back once overwritten, not even while both writes are still running.
    assert not check(writes + [r("a", 10, 20), r("b", 30, 40), r("a", 50, 60)])


def test_a_lost_cas_is_rejected() -> None:
    base = [w("a", 0, 1)]
    assert check(base + [cas("a", "b", True, 2, 3), cas("a", "c", False, 4, 5), r("b", 6, 7)])
    assert not check(base + [cas("a", "b", True, 2, 3), cas("a", "c", True, 4, 5)])  # both won
    assert not check(base + [cas("a", "b", True, 2, 3), r("a", 4, 5)])  # the acknowledged swap vanished
    assert not check(base + [cas("a", "b", False, 2, 3)])  # nothing else changed the value
    racing = base + [cas("a", "b", True, 2, 10), cas("a", "c", False, 3, 11)]
    assert check([*racing, r("b", 20, 21)])
    assert not check([*racing, r("c", 20, 21)])
    assert not check(base + [cas("a", "b", True, 2, 10), cas("a", "c", True, 3, 11)])  # concurrent, both won


def test_cas_never_matches_an_absent_key() -> None:
    assert check([cas("a", "b", False, 0, 1), r(None, 2, 3)])
    assert not check([cas("a", "b", True, 0, 1)])


def test_unknown_writes_may_take_effect_late_or_never() -> None:
    base = [w("a", 0, 1), w("b", 2, None, UNKNOWN)]
    assert check(base + [r("a", 10, 11)])  # never (or not yet)
    assert check(base + [r("b", 10, 11)])  # it explains the value
    assert check(base + [r("a", 10, 11), r("b", 20, 21)])  # long after its call
    assert not check(base + [r("b", 10, 11), r("a", 20, 21)])  # but once only
    assert not check(base + [r("c", 10, 11)])  # it does not explain a value nobody wrote
    assert not check([w("a", 0, 1), r("b", 10, 11), w("b", 20, None, UNKNOWN)])  # nor a read before its call


def test_unknown_ops_explain_a_failed_cas_and_failed_ops_explain_nothing() -> None:
    assert not check([w("a", 0, 1), cas("a", "c", False, 5, 6)])
    assert check([w("a", 0, 1), w("z", 2, None, UNKNOWN), cas("a", "c", False, 5, 6)])
    assert check([w("a", 0, 1), delete(2, None, UNKNOWN), cas("a", "c", False, 5, 6), r(None, 7, 8)])
    assert not check([w("a", 0, 1), w("b", 2, 3, FAILED), r("b", 4, 5)])
    assert check([w("a", 0, 1), w("b", 2, 3, FAILED), r("a", 4, 5)])
    assert check([w("a", 0, 1), cas("a", "b", None, 2, None, UNKNOWN), r("b", 4, 5)])
    assert not check([w("a", 0, 1), cas("x", "b", None, 2, None, UNKNOWN), r("b", 4, 5)])


def test_deletes_make_the_key_absent() -> None:
    assert check([w("a", 0, 1), delete(2, 3), r(None, 4, 5)])
    assert not check([w("a", 0, 1), delete(2, 3), r("a", 4, 5)])


def test_keys_are_checked_independently() -> None:
    history = [w("a", 0, 1, key="x"), w("b", 0, 1, key="y"), r("a", 2, 3, key="x"), r("b", 2, 3, key="y")]
    assert check(history)
    result = check([*history, r("a", 4, 5, key="y")])
    assert not result and result.key == "y" and "key 'y'" in result.explanation


def simulate(rng: random.Random, clients: int, ops: int, keys: list[str], unknown_rate: float) -> list[Op]:
    """A history of a sequential register per key, each op taking effect at a random point of its interval."""
    planned: list[tuple[int, int, int, str, str, str | None, Outcome, int]] = []
    for client in range(clients):
        now = rng.randrange(50)
        for i in range(ops // clients):
            call = now + rng.randrange(20)
            ret = call + 1 + rng.randrange(60)
            point = rng.randint(call, ret)
            kind = rng.choice(["write", "write", "read", "read", "cas", "delete"])
            outcome = rng.choices([OK, UNKNOWN, FAILED], [1 - 2 * unknown_rate, unknown_rate, unknown_rate])[0]
            if kind == "read" or outcome is FAILED:
                outcome = OK if kind == "read" else FAILED
            point = point if outcome is OK or rng.random() < 0.5 else -1  # -1: never takes effect
            if outcome is UNKNOWN and point != -1:
                point = rng.randint(call, call + 500)  # may land long after the client gave up
            planned.append((point, call, ret, kind, rng.choice(keys), f"v{client}.{i}", outcome, client))
            now = ret
    state: dict[str, str | None] = {}
    written: list[str] = ["v0.0"]
    history = []
    for point, call, ret, kind, key, value, outcome, client in sorted(planned, key=lambda p: p[0]):
        current = state.get(key)
        op_ret = ret if outcome is not UNKNOWN else None
        if kind == "read":
            history.append(Op("read", key, call, op_ret, result=current, client=client))
            continue
        expected = rng.choice([*written[-3:], current or "v0.0"]) if kind == "cas" else None
        applies = kind != "cas" or (current is not None and current == expected)
        if point != -1 and outcome is not FAILED and applies:
            state[key] = value if kind != "delete" else None
        if kind != "delete":
            written.append(str(value))
        result = applies if kind == "cas" and outcome is OK else None
        history.append(Op(kind, key, call, op_ret, outcome, value, expected, result, client))  # type: ignore[arg-type]
    return history


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 5), st.integers(1, 60), st.sampled_from([0.0, 0.05, 0.2]))
def test_histories_of_a_real_register_are_accepted_and_one_bad_read_is_rejected(
    seed: int, clients: int, ops: int, unknown_rate: float
) -> None:
    rng = random.Random(seed)
    history = simulate(rng, clients, ops, ["x", "y"], unknown_rate)
    result = check(history)
    assert result, result.explanation
    reads = [i for i, op in enumerate(history) if op.kind == "read"]
    assume(reads)
    i = rng.choice(reads)
    bad = Op("read", history[i].key, history[i].call, history[i].ret, result="never-written")
    result = check([*history[:i], bad, *history[i + 1 :]])
    assert not result and result.key == bad.key and "never-written" in result.explanation


def test_two_thousand_ops_per_key_with_faults_check_quickly() -> None:
    rng = random.Random(7)
    history = simulate(rng, clients=6, ops=4000, keys=["x", "y"], unknown_rate=0.01)
    started = time.monotonic()
    result = check(history, budget_s=30.0)
    assert result, result.explanation
    assert result.ops_checked > 3500
    assert time.monotonic() - started < 10.0


def test_the_budget_bounds_the_search() -> None:
    # Many concurrent writes and a final read of a value nobody wrote: refuting it means trying every order.
    history = [w(f"v{i}", 0, 100) for i in range(20)] + [r(f"v{i}", 101 + i, 101 + i) for i in range(20)]
    with pytest.raises(CheckTimeout):
        check([*history, r("nope", 200, 201)], budget_s=0.2)


def brute_force(history: list[Op]) -> bool:
    """Linearizable by exhaustion: some subset of the unknown ops in some real-time-respecting order fits."""
    ops = [op for op in history if op.outcome is OK or (op.outcome is UNKNOWN and op.kind != "read")]
    unknown = [op for op in ops if op.outcome is UNKNOWN]
    for drop in itertools.product([False, True], repeat=len(unknown)):
        dropped = {id(op) for op, d in zip(unknown, drop, strict=True) if d}
        kept = [op for op in ops if id(op) not in dropped]
        for order in itertools.permutations(kept):
            if any(
                b.ret is not None and b.outcome is OK and b.ret < a.call for a, b in itertools.combinations(order, 2)
            ):
                continue
            state: str | None = None
            for op in order:
                applies = op.kind != "cas" or (state is not None and state == op.expected)
                if (op.kind == "read" and op.result != state) or (
                    op.kind == "cas" and op.outcome is OK and applies != op.result
                ):
                    break
                if op.kind != "read" and applies:
                    state = op.value if op.kind != "delete" else None
            else:
                return True
    return False


def random_op(rng: random.Random, client: int) -> Op:
    kind = rng.choice(["write", "read", "cas", "delete"])
    call = rng.randrange(8)
    outcome = rng.choice([OK, OK, OK, UNKNOWN, FAILED]) if kind != "read" else OK
    ret = call + rng.randrange(4) if outcome is not UNKNOWN else None
    result: str | bool | None = rng.choice([None, "a", "b"]) if kind == "read" else rng.random() < 0.5
    value = rng.choice(["a", "b", "c"]) if kind in ("write", "cas") else None
    expected = rng.choice(["a", "b"]) if kind == "cas" else None
    return Op(kind, "k", call, ret, outcome, value, expected, result if kind in ("read", "cas") else None, client)  # type: ignore[arg-type]


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 6))
def test_the_checker_agrees_with_brute_force_on_small_arbitrary_histories(seed: int, size: int) -> None:
    rng = random.Random(seed)
    history = [random_op(rng, c) for c in range(size)]
    assert bool(check(history)) == brute_force(history), "\n".join(op.describe() for op in history)
