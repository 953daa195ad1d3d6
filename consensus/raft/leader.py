"""Leader behaviour: replication, commitment, heartbeats, ReadIndex, CheckQuorum and transfers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from corral.consensus.raft.confchange import validate_change
from corral.consensus.raft.config import ReadOnlyOption
from corral.consensus.raft.errors import (
    InvariantViolation,
    ProposalDropped,
    SnapshotTemporarilyUnavailable,
    StorageError,
)
from corral.consensus.raft.progress import Progress, ProgressState
from corral.consensus.raft.quorum import VoteResult, committed_index, vote_result
from corral.consensus.raft.types import NONE, ConfChange, Entry, EntryType, Message, MessageType, ReadState

if TYPE_CHECKING:
    from corral.consensus.raft.raft import Raft

MT = MessageType
EMPTY_PROPOSAL = Entry(term=0, index=0)


def step_leader(r: Raft, m: Message) -> None:
    t = m.type
    if t is MT.BEAT:
        bcast_heartbeat(r)
        return
    if t is MT.CHECK_QUORUM:
        _check_quorum(r)
        return
    if t is MT.PROP:
        _propose(r, m)
        return
    if t is MT.READ_INDEX:
        _read_index(r, m)
        return

    pr = r.progress.get(m.frm)
    if pr is None:
        return  # a node outside our configuration
    if t is MT.APP_RESP:
        _handle_append_response(r, m, pr)
    elif t is MT.HEARTBEAT_RESP:
        _handle_heartbeat_response(r, m, pr)
    elif t is MT.SNAP_STATUS:
        if pr.state is not ProgressState.SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0  # failed: probe from match instead, after the next heartbeat
        pr.become_probe()
        # Wait for the follower's APP_RESP (success) or a heartbeat reply (failure) before sending.
        pr.probe_sent = True
    elif t is MT.UNREACHABLE:
        # Pipelined APPs may have been lost: fall back to one probe at a time.
        if pr.state is ProgressState.REPLICATE:
            pr.become_probe()
    elif t is MT.TRANSFER_LEADER:
        _transfer_leader(r, m.frm, pr)


def _drop(r: Raft, m: Message, reason: str) -> None:
    """Refuse a request: raise to a local caller, silently drop one forwarded by a peer."""
    if m.frm in (NONE, r.id):
        raise ProposalDropped(reason)


# Replication.


def _propose(r: Raft, m: Message) -> None:
    if not m.entries:
        raise ValueError("empty proposal")
    if any(0 < e.term < r.term for e in m.entries):
        # A proposed entry carries the term its proposer was in (RawNode.propose_batch), kept when
        # forwarded. Appended at our later term, it could land after entries of our term that its
        # proposer has already applied and taken as proof that the proposal was lost (see
        # consensus/proposal_stamps.py). Dropping it keeps every entry a proposal yields at a term
        # no later than its stamp. (Stamp 0: unstamped, as from a direct Raft.step in tests.)
        _drop(r, m, f"proposal from term {min(e.term for e in m.entries)} is stale at term {r.term}")
        return
    if r.id not in r.progress:
        _drop(r, m, f"node {r.id} was removed from the configuration")
        return
    if r.lead_transferee != NONE:
        _drop(r, m, f"leadership transfer to {r.lead_transferee} in progress")
        return
    if r.pending_self_removal:
        # Our log must not outgrow the voters that stay: one of them has to be able to win an
        # election after we leave, and the one that gets our last entry gets our TIMEOUT_NOW.
        _drop(r, m, f"leader {r.id} is leaving the configuration")
        return
    entries = list(m.entries)
    for i, entry in enumerate(entries):
        if entry.type is not EntryType.CONF_CHANGE:
            continue
        reason = None
        if r.pending_conf_index > r.log.applied:
            # Thesis §4.1: one membership change at a time; the previous one must be applied first.
            reason = f"conf change at index {r.pending_conf_index} not yet applied ({r.log.applied})"
        else:
            try:
                reason = validate_change(r.conf_state, ConfChange.decode(entry.data))
            except ValueError as exc:
                reason = f"undecodable conf change: {exc}"
        if reason is None:
            r.pending_conf_index = r.log.last_index() + i + 1
            r.pending_self_removal = r.removes_self(entry)
            if r.pending_self_removal:
                del entries[i + 1 :]  # nothing may follow our own removal (see above)
                break
        else:
            entries[i] = EMPTY_PROPOSAL  # keep the slot, as etcd does: the application sees a no-op
    append_entry(r, entries)
    bcast_append(r)


def append_entry(r: Raft, entries: Sequence[Entry]) -> None:
    """Append proposals to the leader's log at our term and the next indexes (replacing each
    proposal's stamp, which _propose has checked)."""
    last = r.log.last_index()
    stamped = [Entry(r.term, last + 1 + i, e.data, e.type) for i, e in enumerate(entries)]
    r.log.append(stamped)
    # The leader's own entry counts towards the quorum: the application persists these entries
    # before it sends the APPs whose acknowledgements could complete a quorum.
    r.progress[r.id].maybe_update(r.log.last_index())
    maybe_commit(r)


def maybe_commit(r: Raft) -> bool:
    """Advance the commit index to what a quorum of voters has, if that entry is of our term."""
    acked = {node: pr.match for node, pr in r.progress.items()}
    index = committed_index(r.conf_state.voters, acked)
    # §5.4.2: only entries of the current term are committed by counting replicas; earlier ones
    # are committed indirectly by the Log Matching Property.
    if not r.log.maybe_commit(index, r.term):
        return False
    _release_pending_read_index(r)
    return True


def maybe_send_append(r: Raft, to: int, send_if_empty: bool = True) -> bool:
    """Send `to` the entries it lacks (or a snapshot); returns whether anything was sent."""
    pr = r.progress[to]
    if pr.is_paused():
        return False
    prev_index = pr.next - 1
    try:
        prev_term = r.log.term(prev_index)
        entries = r.log.entries(pr.next, r.max_msg_size)
    except StorageError:
        return _send_snapshot(r, to, pr)
    if not entries and not send_if_empty:
        return False
    r.send(
        Message(
            MT.APP,
            to=to,
            index=prev_index,
            log_term=prev_term,
            entries=tuple(entries),
            commit=r.log.committed,
        )
    )
    pr.on_append_sent(entries[-1].index if entries else None)
    return True


def _send_snapshot(r: Raft, to: int, pr: Progress) -> bool:
    if not pr.recent_active:
        return False  # the peer may be down; do not ship a large snapshot into the void
    try:
        snapshot = r.log.snapshot()
    except SnapshotTemporarilyUnavailable:
        return False
    if snapshot.is_empty():
        raise InvariantViolation(f"entries for {to} compacted but no snapshot available")
    r.send(Message(MT.SNAP, to=to, snapshot=snapshot))
    pr.become_snapshot(snapshot.meta.index)
    return True


def bcast_append(r: Raft) -> None:
    for node in r.progress:
        if node != r.id and maybe_send_append(r, node):
            # In REPLICATE, keep streaming size-limited batches until the window is full.
            while maybe_send_append(r, node, send_if_empty=False):
                pass


def bcast_heartbeat(r: Raft, context: bytes | None = None) -> None:
    if context is None:
        context = r.read_only.last_pending_context()
    for node, pr in r.progress.items():
        if node == r.id:
            continue
        # Never tell a follower to commit beyond what it is known to hold.
        commit = min(pr.match, r.log.committed)
        r.send(Message(MT.HEARTBEAT, to=node, commit=commit, context=context))


def _handle_append_response(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    if m.reject:
        # Fast backtracking: skip our entries that cannot match the follower's hint.
        next_probe = m.reject_hint
        if m.log_term > 0:
            next_probe, _ = r.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            maybe_send_append(r, m.frm)
        return
    was_paused = pr.is_paused()
    if not (pr.maybe_update(m.index) or (pr.match == m.index and pr.state is ProgressState.PROBE)):
        return
    if pr.state is ProgressState.PROBE:
        pr.become_replicate()  # the logs match up to `match`: start pipelining
    elif pr.state is ProgressState.SNAPSHOT and pr.match + 1 >= r.log.first_index():
        # The follower caught up past our compaction point (it applied the snapshot).
        pr.become_probe()
        pr.become_replicate()
    elif pr.state is ProgressState.REPLICATE:
        pr.inflights.free_le(m.index)
    if maybe_commit(r):
        bcast_append(r)  # tell everyone the new commit index
    elif was_paused:
        maybe_send_append(r, m.frm)
    while maybe_send_append(r, m.frm, send_if_empty=False):
        pass
    if m.frm == r.lead_transferee and pr.match == r.log.last_index():
        send_timeout_now(r, m.frm)


def _handle_heartbeat_response(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    pr.probe_sent = False
    if pr.state is ProgressState.REPLICATE and pr.inflights.full():
        pr.inflights.free_first_one()  # a full window would otherwise stall a lossy link forever
    if pr.match < r.log.last_index():
        maybe_send_append(r, m.frm)
    if r.read_only_option is not ReadOnlyOption.SAFE or not m.context:
        return
    acks = r.read_only.recv_ack(m.frm, m.context)
    if acks is None or vote_result(r.conf_state.voters, acks) is not VoteResult.WON:
        return
    for status in r.read_only.advance(m.context):
        _respond_to_read_index(r, status.request, status.index)


def _check_quorum(r: Raft) -> None:
    # Thesis §6.2: a leader that has not heard from a quorum for an election timeout steps down,
    # so clients stop trusting a leader that can no longer commit.
    active = {node: pr.recent_active or node == r.id for node, pr in r.progress.items()}
    if vote_result(r.conf_state.voters, active) is not VoteResult.WON:
        r.become_follower(r.term, NONE)
        return
    for node, pr in r.progress.items():
        if node != r.id:
            pr.recent_active = False


# ReadIndex (thesis §6.4).


def committed_entry_in_current_term(r: Raft) -> bool:
    return r.log.zero_term_on_err(r.log.committed) == r.term


def _read_index(r: Raft, m: Message) -> None:
    if not m.context:
        if m.frm in (NONE, r.id):
            raise ValueError("read index requests need a non-empty context")
        return
    if r.conf_state.voters == (r.id,):
        _respond_to_read_index(r, m, r.log.committed)  # a lone voter is trivially the leader
        return
    if not committed_entry_in_current_term(r):
        # Our commit index may lag the true one until our term's first entry commits (thesis §6.4);
        # answer once it does.
        r.pending_read_index_messages.append(m)
        return
    _serve_read_index(r, m)


def _serve_read_index(r: Raft, m: Message) -> None:
    if r.read_only_option is ReadOnlyOption.LEASE_BASED:
        _respond_to_read_index(r, m, r.log.committed)
        return
    r.read_only.add_request(r.log.committed, m)
    r.read_only.recv_ack(r.id, m.context)
    bcast_heartbeat(r, m.context)  # a quorum of replies proves we were still leader


def _release_pending_read_index(r: Raft) -> None:
    if not r.pending_read_index_messages or not committed_entry_in_current_term(r):
        return
    pending, r.pending_read_index_messages = r.pending_read_index_messages, []
    for m in pending:
        _serve_read_index(r, m)


def _respond_to_read_index(r: Raft, request: Message, index: int) -> None:
    if request.frm in (NONE, r.id):
        r.read_states.append(ReadState(index, request.context))
    else:
        r.send(Message(MT.READ_INDEX_RESP, to=request.frm, index=index, context=request.context))


# Leadership transfer (thesis §3.10).


def _transfer_leader(r: Raft, transferee: int, pr: Progress) -> None:
    if pr.is_learner:
        return  # a learner cannot lead
    if r.lead_transferee != NONE:
        if r.lead_transferee == transferee:
            return  # already under way
        r.abort_leader_transfer()
    if transferee == r.id:
        return  # already the leader
    # The transfer must finish within an election timeout (see Raft._tick_heartbeat); proposals
    # are refused meanwhile so the transferee can catch up.
    r.election_elapsed = 0
    r.lead_transferee = transferee
    if pr.match == r.log.last_index():
        send_timeout_now(r, transferee)
    else:
        maybe_send_append(r, transferee)


def hand_off(r: Raft) -> None:
    """We applied our own removal (or demotion) as leader: pass leadership on, then step down.

    The remaining voters may not know yet that the change committed and so may still count us in
    their quorum. The voter holding our whole log gets TIMEOUT_NOW and wins at once (we vote for it);
    one exists, because the change committed on a quorum and we appended nothing after it.
    """
    bcast_append(r)  # spread the commit index first
    last = r.log.last_index()
    candidates = [node for node in r.conf_state.voters if r.progress[node].match == last]
    if candidates:
        send_timeout_now(r, candidates[0])
    r.become_follower(r.term, NONE)


def send_timeout_now(r: Raft, to: int) -> None:
    r.send(Message(MT.TIMEOUT_NOW, to=to))
