"""Issue 5's end-to-end scenario: the Kafka-style mini cluster of `examples/kafka_mini` loses its controller
broker and its Corral leader to one kill -9, and recovers without losing an acknowledged record or a
committed offset. The test runs the example's own driver and asserts on the `Results` it fills in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from corral.client.recipes import NO_LEADER

from examples.kafka_mini.driver import Settings, run_scenario
from examples.kafka_mini.processes import LocalCluster
from examples.kafka_mini.results import STEPS, Results


@pytest.mark.timeout(120)
def test_controller_broker_and_corral_leader_killed_together(tmp_path: Path) -> None:
    results = Results()
    lines: list[str] = []
    with LocalCluster(tmp_path) as cluster:  # every process is killed on the way out, pass or fail
        try:
            asyncio.run(asyncio.wait_for(run_scenario(cluster, results, Settings(), say=lines.append), 90))
        except BaseException:
            tails = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in [*cluster.brokers.values(), *cluster.corral])
            print("\n".join(lines), "\n", results.report(), "\n", tails)
            raise
    print("\n".join(lines), "\n", results.report())  # shown with -s, or on a later assertion failure

    # a new Corral leader among the survivors, and a new controller with exactly the next epoch
    assert results.new_corral_leader and results.new_corral_leader != results.killed_corral
    assert results.controller_epoch_after == results.controller_epoch_before + 1
    assert results.new_controller != results.killed_broker and results.new_controller in results.live_after

    # every partition the dead broker led has a live leader one leader epoch later, written by the new controller;
    # the other partitions kept their leader and epoch
    assert len(results.moved) == 4  # 2 topics x 6 partitions round-robin over 3 brokers
    for tp in results.moved:
        before, after = results.states_before[tp], results.states_after[tp]
        assert after.leader not in (NO_LEADER, results.killed_broker) and after.leader in results.live_after, tp
        assert after.leader_epoch == before.leader_epoch + 1, (tp, before, after)
        assert after.controller_epoch == results.controller_epoch_after, (tp, after)
        assert after.leader in before.isr and results.killed_broker not in after.isr, (tp, before, after)
    for tp, before in results.states_before.items():
        if tp not in results.moved:
            after = results.states_after[tp]
            assert (after.leader, after.leader_epoch) == (before.leader, before.leader_epoch), (tp, before, after)

    # the producer rerouted: every moved partition acknowledged records again, and nothing gave up
    assert set(results.first_ack_after_kill) == set(results.moved)
    assert results.acked_before > 0 and results.acked_after > 0
    assert results.produce_failures == []
    # nothing acknowledged was lost: each acknowledged record is on its partition's current leader (and was
    # delivered to the consumer)
    assert results.lost == [] and results.unconsumed == []

    # no committed offset was lost or went backwards: before vs after, and every value Corral ever stored
    assert results.offsets_before and results.commits_before > 0 and results.commits_after > 0
    for tp, offset in results.offsets_before.items():
        assert results.offsets_after[tp] >= offset, tp
    for tp, history in results.offset_history.items():
        assert history == sorted(history) and history[-1] == results.offsets_after[tp], (tp, history)

    # every recovery step was timed; a lease can only expire, and so a controller be replaced, under a Corral
    # leader (each step is seen by its own observer, so the later steps are only ordered to within a few ms)
    assert set(results.timings) == set(STEPS)
    timings = results.timings
    assert timings["corral_leader"] < min(timings["broker_left"], timings["controller"], timings["partitions_led"])
    assert results.problems() == []
