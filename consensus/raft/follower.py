"""Follower and (pre-)candidate behaviour: AppendEntries, heartbeats, snapshots and vote counting."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from corral.consensus.raft import leader
from corral.consensus.raft.errors import ProposalDropped
from corral.consensus.raft.quorum import VoteResult
from corral.consensus.raft.types import NONE, CampaignType, Message, MessageType, ReadState, Role, Snapshot

if TYPE_CHECKING:
    from corral.consensus.raft.raft import Raft

MT = MessageType


def _drop(r: Raft, m: Message, reason: str) -> None:
    """Refuse a request: raise to a local caller, silently drop one forwarded by a peer."""
    if m.frm in (NONE, r.id):
        raise ProposalDropped(reason)


def step_follower(r: Raft, m: Message) -> None:
    t = m.type
    if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
        # Hearing from the current leader resets the election timer (§5.2).
        r.election_elapsed = 0
        r.lead = m.frm
        if t is MT.APP:
            handle_append(r, m)
        elif t is MT.HEARTBEAT:
            handle_heartbeat(r, m)
        else:
            handle_snapshot(r, m)
    elif t in (MT.PROP, MT.READ_INDEX, MT.TRANSFER_LEADER):
        if r.lead == NONE:
            if t is not MT.TRANSFER_LEADER:
                _drop(r, m, f"no leader at term {r.term}")
            return
        # Forward to the leader; the reply (if any) comes to m.frm. A proposal keeps its proposer's
        # stamp (never ours): the leader judges it by the term it entered the core in.
        r.send(replace(m, to=r.lead))
    elif t is MT.TIMEOUT_NOW:
        # The leader hands over: campaign at once, bypassing PreVote and the leases of others.
        r.hup(CampaignType.TRANSFER)
    elif t is MT.READ_INDEX_RESP:
        r.read_states.append(ReadState(m.index, m.context))


def step_candidate(r: Raft, m: Message) -> None:
    """Both pre-candidate and candidate: counts its own kind of vote responses."""
    t = m.type
    expected = MT.PRE_VOTE_RESP if r.role is Role.PRE_CANDIDATE else MT.VOTE_RESP
    if t in (MT.PROP, MT.READ_INDEX):
        _drop(r, m, f"no leader at term {r.term} (election in progress)")
    elif t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
        # §5.2: a leader exists for this term (the step's term check made m.term >= ours).
        r.become_follower(m.term, m.frm)
        step_follower(r, m)
    elif t is expected:
        result = r.poll(m.frm, not m.reject)
        if result is VoteResult.WON:
            if r.role is Role.PRE_CANDIDATE:
                r.campaign(CampaignType.ELECTION)
            else:
                r.become_leader()
                leader.bcast_append(r)
        elif result is VoteResult.LOST:
            # Back to follower in the same term; a new election starts after a randomized timeout.
            r.become_follower(r.term, NONE)


def handle_append(r: Raft, m: Message) -> None:
    if m.index < r.log.committed:
        # Everything up to our commit index matches the leader (Leader Completeness, §5.4).
        r.send(Message(MT.APP_RESP, to=m.frm, index=r.log.committed))
        return
    last_new = r.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if last_new is not None:
        r.send(Message(MT.APP_RESP, to=m.frm, index=last_new))
        return
    # §5.3: reject when our log lacks (index, log_term). Hint the largest index whose term is
    # <= log_term so the leader can skip a whole conflicting term per round trip.
    hint_index, hint_term = r.log.find_conflict_by_term(min(m.index, r.log.last_index()), m.log_term)
    r.send(Message(MT.APP_RESP, to=m.frm, index=m.index, reject=True, reject_hint=hint_index, log_term=hint_term))


def handle_heartbeat(r: Raft, m: Message) -> None:
    # The leader sends commit <= our known match, so this never commits entries we do not hold.
    r.log.commit_to(m.commit)
    r.send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context))


def handle_snapshot(r: Raft, m: Message) -> None:
    if m.snapshot is None:
        return
    if restore(r, m.snapshot):
        r.send(Message(MT.APP_RESP, to=m.frm, index=r.log.last_index()))
    else:
        r.send(Message(MT.APP_RESP, to=m.frm, index=r.log.committed))


def restore(r: Raft, snapshot: Snapshot) -> bool:
    """Replace our log and membership with `snapshot`; False if it brings nothing new."""
    meta = snapshot.meta
    if meta.index <= r.log.committed:
        return False
    if r.role is not Role.FOLLOWER:
        # Defensive: only a follower of the sender restores (step_candidate converts first).
        r.become_follower(r.term + 1, NONE)
        return False
    if not meta.conf_state.contains(r.id):
        return False  # a snapshot of a membership we are not part of
    if r.log.match_term(meta.index, meta.term):
        # We already hold the snapshot's last entry, so our log matches up to it: just commit.
        r.log.commit_to(meta.index)
        return False
    r.log.restore(snapshot)
    r.restore_conf(meta.conf_state)
    return True
