"""Progress (probe/replicate/snapshot flow control) and the Inflights window."""

from __future__ import annotations

import pytest
from corral.consensus.raft.progress import Inflights, Progress, ProgressState


def test_inflights_window_is_bounded_and_freed_in_order() -> None:
    window = Inflights(3)
    for last in (5, 7, 9):
        window.add(last)
    assert window.full()
    with pytest.raises(OverflowError):
        window.add(10)
    window.free_le(7)
    assert len(window) == 1 and not window.full()
    window.free_first_one()
    assert len(window) == 0
    window.add(3)
    with pytest.raises(ValueError):
        window.add(2)  # out of order


def test_probe_pauses_after_one_append_until_a_reply() -> None:
    pr = Progress(next_index=5, max_inflight=4)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.on_append_sent(None)
    assert pr.is_paused()
    assert pr.maybe_update(4)
    assert not pr.is_paused()


def test_replicate_pipelines_until_the_window_is_full() -> None:
    pr = Progress(next_index=1, max_inflight=2)
    pr.maybe_update(3)
    pr.become_replicate()
    assert pr.next == 4
    pr.on_append_sent(5)
    pr.on_append_sent(8)
    assert pr.next == 9 and pr.is_paused()
    pr.maybe_update(5)
    pr.inflights.free_le(5)
    assert not pr.is_paused()


def test_maybe_decr_to_ignores_stale_rejections() -> None:
    pr = Progress(next_index=11, max_inflight=4)
    pr.maybe_update(5)
    pr.become_replicate()
    pr.on_append_sent(10)
    assert not pr.maybe_decr_to(rejected=5, match_hint=3)  # at or below match: stale
    assert pr.maybe_decr_to(rejected=8, match_hint=3)
    assert pr.next == 6  # back to match + 1
    probe = Progress(next_index=11, max_inflight=4)
    assert not probe.maybe_decr_to(rejected=7, match_hint=3)  # not our latest probe (next-1 == 10)
    assert probe.maybe_decr_to(rejected=10, match_hint=3)
    assert probe.next == 4  # jump to the follower's hint + 1


def test_snapshot_state_pauses_and_resumes_after_the_snapshot() -> None:
    pr = Progress(next_index=3, max_inflight=4)
    pr.become_snapshot(20)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.state is ProgressState.PROBE and pr.next == 21
