"""Randomized whole-cluster runs: one seed = one reproducible world (swarm testing).

Each seed draws the cluster shape, options and fault mix, runs a fault phase (partitions, drops,
reordering, compaction, restarts, transfers, reads) with safety checked after every step, then heals
the network and requires a leader and a newly committed proposal within a bounded number of ticks.

Rerun one world: CORRAL_SEED=<seed> .venv/bin/python -m pytest tests/consensus/raft/test_simulation.py -q
More worlds: CORRAL_SIM_SEEDS=2000 (default 200).
"""

from __future__ import annotations

import os
import random

import pytest
from corral.consensus.raft.testing import Checker, Cluster
from corral.consensus.raft.types import NONE, ConfChange, ConfChangeType

FAULT_STEPS = 300
ELECTION_TICK = 10
LIVENESS_TICKS = 30 * ELECTION_TICK


def _seeds() -> list[int]:
    if "CORRAL_SEED" in os.environ:
        return [int(os.environ["CORRAL_SEED"])]
    return list(range(int(os.environ.get("CORRAL_SIM_SEEDS", "200"))))


def _random_fault(cluster: Cluster, rng: random.Random) -> None:
    ids = sorted(cluster.nodes)
    kind = rng.randrange(4)
    if kind == 0:
        cluster.heal()
        cluster.drop_rate = cluster.base_drop_rate  # type: ignore[attr-defined]
    elif kind == 1:
        cluster.isolate(rng.choice(ids))
    else:
        shuffled = ids[:]
        rng.shuffle(shuffled)
        cut = rng.randrange(1, len(ids))
        cluster.partition(shuffled[:cut], shuffled[cut:])


def run_world(seed: int) -> Cluster:
    rng = random.Random(seed)
    voters = list(range(1, rng.choice([3, 3, 5]) + 1))
    learners = [len(voters) + 1] if rng.random() < 0.3 else []
    cluster = Cluster(
        voters,
        learners,
        seed=rng.getrandbits(32),
        checker=Checker(),
        trace_limit=400,
        election_tick=ELECTION_TICK,
        heartbeat_tick=rng.choice([1, 2, 3]),
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        max_size_per_msg=rng.choice([None, 16]),
        max_inflight_msgs=rng.choice([1, 4, 256]),
    )
    cluster.base_drop_rate = rng.choice([0.0, 0.02, 0.1])  # type: ignore[attr-defined]
    cluster.drop_rate = cluster.base_drop_rate  # type: ignore[attr-defined]
    deliver_fraction = rng.choice([0.3, 0.7, 1.0])
    reconfigure = rng.random() < 0.5
    ids = sorted(cluster.nodes)

    # Fault phase: safety is checked on every persist, apply and step.
    for step in range(FAULT_STEPS):
        action = rng.random()
        if action < 0.40:
            cluster.tick()
        elif action < 0.70:
            cluster.propose(rng.choice(ids), b"%d" % step)
        elif action < 0.78:
            _random_fault(cluster, rng)
        elif action < 0.82:
            cluster.compact(rng.choice(ids))
        elif action < 0.84:
            cluster.restart(rng.choice(ids))
        elif action < 0.88:
            cluster.read_index(rng.choice(ids), b"read-%d" % step)
        elif action < 0.90:
            leader = cluster.leader()
            if leader != NONE:
                cluster.nodes[leader].rawnode.transfer_leader(rng.choice(ids))
        elif action < 0.93 and reconfigure:
            leader = cluster.leader()
            if leader != NONE:
                change = ConfChange(rng.choice(list(ConfChangeType)), rng.choice(ids))
                cluster.propose_conf_change(leader, change)
        cluster.process_all()
        cluster.deliver_some(deliver_fraction)

    # Liveness phase: heal everything; a leader must emerge and commit a new proposal.
    cluster.heal()
    marker = b"liveness-%d" % seed
    proposed_to = (NONE, 0)  # (leader, term): a proposal may be lost when leadership changes
    for _ in range(LIVENESS_TICKS):
        cluster.tick()
        cluster.stabilize()
        leader = cluster.leader()
        if leader != NONE and proposed_to != (leader, cluster.raft(leader).term):
            if cluster.propose(leader, marker):
                proposed_to = (leader, cluster.raft(leader).term)
            cluster.stabilize()
        if leader != NONE and all(marker in cluster.nodes[v].data() for v in cluster.raft(leader).conf_state.voters):
            return cluster
    raise AssertionError(
        f"no liveness: leader={cluster.leader()} after {LIVENESS_TICKS} healed ticks; "
        + "; ".join(repr(cluster.raft(i)) for i in ids)
    )


@pytest.mark.parametrize("seed", _seeds())
def test_random_world_is_safe_and_live(seed: int) -> None:
    cluster: Cluster | None = None
    try:
        cluster = run_world(seed)
    except AssertionError as exc:
        rerun = f"CORRAL_SEED={seed} .venv/bin/python -m pytest tests/consensus/raft/test_simulation.py -q"
        print(f"CORRAL_SEED={seed}\nrerun: {rerun}")
        raise AssertionError(f"CORRAL_SEED={seed}: {exc}\nrerun: {rerun}") from exc
    # Every voter applied the same sequence (State Machine Safety, checked as a whole at the end).
    histories = [node.history for node in cluster.nodes.values()]
    shortest = min(len(h) for h in histories)
    assert all(h[:shortest] == histories[0][:shortest] for h in histories)
