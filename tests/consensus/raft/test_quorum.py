"""Majority math, checked against a brute-force definition with hypothesis."""

from __future__ import annotations

from corral.consensus.raft.quorum import VoteResult, committed_index, majority, vote_result
from hypothesis import given
from hypothesis import strategies as st

voter_sets = st.lists(st.integers(1, 9), min_size=1, max_size=7, unique=True).map(sorted)


@given(voter_sets, st.data())
def test_committed_index_is_the_largest_index_a_majority_has(voters: list[int], data: st.DataObject) -> None:
    acked = {v: data.draw(st.integers(0, 20)) for v in voters if data.draw(st.booleans())}
    expected = max([i for i in range(0, 21) if sum(acked.get(v, 0) >= i for v in voters) >= majority(len(voters))])
    assert committed_index(voters, acked) == expected


@given(voter_sets, st.data())
def test_vote_result_matches_counting(voters: list[int], data: st.DataObject) -> None:
    votes = {v: data.draw(st.booleans()) for v in voters if data.draw(st.booleans())}
    votes[100] = True  # non-voters never count
    granted = sum(votes.get(v) is True for v in voters)
    rejected = sum(votes.get(v) is False for v in voters)
    q = majority(len(voters))
    expected = VoteResult.WON if granted >= q else VoteResult.LOST if rejected > len(voters) - q else VoteResult.PENDING
    assert vote_result(voters, votes) is expected


def test_empty_configuration() -> None:
    assert committed_index([], {}) == 0
    assert vote_result([], {}) is VoteResult.WON
