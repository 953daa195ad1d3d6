"""Telling early, and for certain, that a pending proposal will never be applied.

When the core takes a proposal, it stamps it with the term t0 the node is in (`RawNode.propose_batch`),
and the proposal keeps that stamp however often it is forwarded. A leader of term T > t0 drops it instead
of appending it (`leader._propose`). So every log entry a proposal ever yields has a term <= t0: the
leader of term t0 appends it (a leader of an older term would too, were one to receive it: still <= t0).

Claim: once this member applies a committed entry of term T > t0 and has not applied the proposal (its
request id) before it, the proposal is never applied, anywhere.

- Terms never decrease along any Raft log: a leader appends at its own term, which is at least the term of
  every entry it holds, and a follower's log is always a prefix of some leader's.
- The committed entries form one sequence that every later leader's log begins with (Leader Completeness,
  §5.4), and this member applies them in index order.
- Say the term-T entry sits at index j. An entry of the proposal has term <= t0 < T, so in the committed
  sequence it can only come before j. This member has applied every index up to j and did not meet the
  proposal there, so no index before j holds it; after j none can. It is never committed.

So when a leader dies or is deposed with proposals in flight, their proposers answer "not applied, safe
to retry" as soon as they apply the new leader's first entry, instead of an ambiguous timeout seconds later.
Proposals the new leader did receive come before that entry and are applied and answered as usual.

It needs every applied entry to pass through `expired`. A member that installs a snapshot skips entries,
so it cannot tell whether the snapshot holds a proposal: `forget_all` then turns the pending proposals
back into ordinary ones (they resolve by being applied or time out). A proposal that never reached the
core has no stamp and is never declared lost.
"""

from __future__ import annotations

import sys

_NEVER = sys.maxsize


class ProposalStamps:
    """The stamp term of each pending proposal, by request id, and which ones a newer entry rules out."""

    __slots__ = ("_terms", "oldest")

    def __init__(self) -> None:
        self._terms: dict[bytes, int] = {}
        # A lower bound of the stamps held (exact after each `expired`): entries of terms up to it rule
        # nothing out, so the apply path pays one comparison per entry.
        self.oldest = _NEVER

    def __len__(self) -> int:
        return len(self._terms)

    def stamp(self, request_ids: list[bytes], term: int) -> None:
        """The core took these proposals at `term`. Term 0 (a node that never saw a leader) is no stamp."""
        if term <= 0 or not request_ids:
            return
        self._terms.update(dict.fromkeys(request_ids, term))
        if term < self.oldest:
            self.oldest = term

    def forget(self, request_id: bytes) -> None:
        """The proposal was answered (applied, failed or timed out)."""
        self._terms.pop(request_id, None)

    def forget_all(self) -> None:
        """A snapshot replaced the state: no pending proposal can be ruled out any more."""
        self._terms.clear()
        self.oldest = _NEVER

    def expired(self, term: int) -> list[bytes]:
        """The request ids that an applied entry of `term` proves will never be applied (see the module
        docstring); they are forgotten. Call for every applied entry whose term is above `oldest`."""
        if term <= self.oldest:
            return []
        lost = [request_id for request_id, stamp in self._terms.items() if stamp < term]
        for request_id in lost:
            del self._terms[request_id]
        self.oldest = min(self._terms.values(), default=_NEVER)
        return lost
