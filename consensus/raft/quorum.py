"""Majority arithmetic as pure functions: the commit index and the outcome of a vote.

Only simple majorities are supported (one membership change at a time, no joint consensus).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence


class VoteResult(enum.Enum):
    PENDING = "pending"  # neither a quorum of grants nor of rejections yet
    WON = "won"
    LOST = "lost"


def majority(n: int) -> int:
    """The size of a quorum among `n` voters."""
    return n // 2 + 1


def committed_index(voters: Sequence[int], acked: Mapping[int, int]) -> int:
    """The largest index acknowledged by a quorum of `voters` (missing voters count as 0).

    An empty configuration commits nothing.
    """
    if not voters:
        return 0
    matched = sorted((acked.get(v, 0) for v in voters), reverse=True)
    # The quorum-th highest acknowledgement is held by at least a quorum.
    return matched[majority(len(voters)) - 1]


def vote_result(voters: Sequence[int], votes: Mapping[int, bool]) -> VoteResult:
    """Tally `votes` (id -> granted) of `voters`; ids outside `voters` are ignored.

    An empty configuration wins, so a node that is alone can make progress.
    """
    if not voters:
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        vote = votes.get(v)
        if vote is True:
            granted += 1
        elif vote is False:
            rejected += 1
    q = majority(len(voters))
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST
