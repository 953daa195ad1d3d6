"""The Raft state machine: term, vote, role transitions, ticks and message dispatch. No I/O.

Inputs are ticks and messages; outputs accumulate in `msgs`, `read_states` and the log's unstable
tail, which RawNode packs into Ready batches. Role-specific handling lives in leader.py (leader) and
follower.py (follower, pre-candidate and candidate). Section numbers cite the Raft paper (§n) or,
where stated, Ongaro's thesis.
"""

from __future__ import annotations

from dataclasses import replace

from corral.consensus.raft import follower, leader
from corral.consensus.raft.confchange import ConfChangeError, apply_change
from corral.consensus.raft.config import RaftConfig
from corral.consensus.raft.errors import InvariantViolation
from corral.consensus.raft.progress import Progress
from corral.consensus.raft.quorum import VoteResult, vote_result
from corral.consensus.raft.raft_log import RaftLog
from corral.consensus.raft.read_only import ReadOnly
from corral.consensus.raft.storage import Storage
from corral.consensus.raft.types import (
    CAMPAIGN_TRANSFER,
    NONE,
    CampaignType,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    SoftState,
)

MT = MessageType
_VOTE_MESSAGES = (MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP)
_FORWARDED = (MT.PROP, MT.READ_INDEX, MT.TRANSFER_LEADER)


class Raft:
    """One node's Raft state. Not thread-safe; driven through RawNode."""

    def __init__(self, config: RaftConfig, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.rng = config.rng
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.max_msg_size = config.max_size_per_msg
        self.max_inflight = config.max_inflight_msgs
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.read_only_option = config.read_only_option
        self.log = RaftLog(storage, config.max_committed_size_per_ready)

        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.conf_state = ConfState()
        self.progress: dict[int, Progress] = {}  # voters and learners, sorted by id
        self.is_learner = False
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self.lead_transferee = NONE
        # A conf change may be proposed only once the log is applied past this index (one at a time).
        self.pending_conf_index = 0
        # Leader only: an unapplied conf change in our log removes (or demotes) us; see leader._propose.
        self.pending_self_removal = False

        hard_state, conf_state = storage.initial_state()
        self.restore_conf(conf_state)
        if not hard_state.is_empty():
            self._load_state(hard_state)
        if config.applied > 0:
            self.log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    def __repr__(self) -> str:
        return f"Raft(id={self.id}, term={self.term}, role={self.role.value}, lead={self.lead}, log={self.log})"

    # State views.

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _load_state(self, state: HardState) -> None:
        if not self.log.committed <= state.commit <= self.log.last_index():
            raise InvariantViolation(
                f"hard state commit {state.commit} outside [{self.log.committed}, {self.log.last_index()}]"
            )
        self.log.committed = state.commit
        self.term = state.term
        self.vote = state.vote

    def promotable(self) -> bool:
        """Whether this node may campaign: a voter, not in the middle of installing a snapshot."""
        pr = self.progress.get(self.id)
        return pr is not None and not pr.is_learner and self.log.unstable.snapshot is None

    def read_messages(self) -> list[Message]:
        """Take the outgoing messages (tests; RawNode reads `msgs` through Ready)."""
        msgs, self.msgs = self.msgs, []
        return msgs

    # Sending.

    def send(self, m: Message) -> None:
        """Queue `m` for the next Ready, stamping our id and, for most types, our term."""
        stamps: dict[str, int] = {}
        if m.frm == NONE:
            stamps["frm"] = self.id
        if m.type in _VOTE_MESSAGES:
            # Vote traffic carries the term explicitly: a PreVote asks about a future term, and
            # a granted PreVote reply echoes it. (Only a rejection from a node that never saw a
            # term carries term 0.)
            if m.term == 0 and not m.reject:
                raise InvariantViolation(f"term unset when sending {m.type.name}")
        else:
            if m.term != 0:
                raise InvariantViolation(f"term set ({m.term}) when sending {m.type.name}")
            # Forwarded requests keep term 0: they are local to whoever handles them.
            if m.type not in _FORWARDED:
                stamps["term"] = self.term
        self.msgs.append(replace(m, **stamps) if stamps else m)  # one copy: replace() is not cheap

    # Role transitions.

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE  # §5.2: at most one vote per term
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.votes = {}
        last = self.log.last_index()
        for node, pr in self.progress.items():
            fresh = Progress(last + 1, self.max_inflight, pr.is_learner)
            if node == self.id:
                fresh.match = last
            self.progress[node] = fresh
        self.pending_conf_index = 0
        self.pending_self_removal = False
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []

    def _reset_randomized_election_timeout(self) -> None:
        # §5.2: randomized timeouts in [election_tick, 2*election_tick) make split votes rare.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        # A pre-candidate changes neither term nor vote: a failed PreVote round leaves no trace.
        if self.role is Role.LEADER:
            raise InvariantViolation("leader cannot become pre-candidate")
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise InvariantViolation("leader cannot become candidate")
        self._reset(self.term + 1)  # §5.2: increment the term and vote for self
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        if self.role is Role.FOLLOWER:
            raise InvariantViolation("follower cannot become leader without an election")
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        own = self.progress[self.id]
        own.become_replicate()
        own.recent_active = True
        # Entries past our last index may be conf changes we have not applied: hold new ones back.
        self.pending_conf_index = self.log.last_index()
        self.pending_self_removal = any(
            self.removes_self(e) for e in self.log.slice(self.log.applied + 1, self.log.last_index() + 1, None)
        )
        # Thesis §6.4 / paper §8: an empty entry of our term lets us commit (and learn the commit
        # index of) everything from earlier terms.
        leader.append_entry(self, [leader.EMPTY_PROPOSAL])

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # Time.

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(MT.HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, frm=self.id))
            # Thesis §3.10: a transfer not done within an election timeout is abandoned.
            if self.role is Role.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.role is not Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, frm=self.id))

    # Messages.

    def step(self, m: Message) -> None:
        """Handle one message: first the term rules common to all roles, then the role's handler."""
        # Local messages carry term 0 and skip the term rules.
        if m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = self.check_quorum and self.lead != NONE and self.election_elapsed < self.election_timeout
                if in_lease and not force:
                    # Thesis §4.2.3: we heard from a leader less than an election timeout ago, so a
                    # vote request is from a disruptive (e.g. partitioned) server: ignore it
                    # without adopting its term.
                    return
            # A PreVote never changes our term, nor does a granted PreVote reply: the term is raised
            # when the pre-election is won, not per grant.
            keeps_term = m.type is MT.PRE_VOTE or (m.type is MT.PRE_VOTE_RESP and not m.reject)
            if not keeps_term:
                # §5.1: adopt the newer term, and its leader if the message comes from one.
                self.become_follower(m.term, m.frm if m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP) else NONE)
        elif 0 < m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A stale leader cut off from us: with CheckQuorum/PreVote we never raise our term
                # enough to depose it ourselves, so tell it our term and it will step down.
                self.send(Message(MT.APP_RESP, to=m.frm))
            elif m.type is MT.PRE_VOTE:
                # Reject so a pre-candidate with a stale term does not wait forever for us.
                self.send(Message(MT.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return  # §5.1: otherwise ignore stale-term messages

        if m.type is MT.HUP:
            self.hup(CampaignType.PRE_ELECTION if self.pre_vote else CampaignType.ELECTION)
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            leader.step_leader(self, m)
        elif self.role is Role.FOLLOWER:
            follower.step_follower(self, m)
        else:
            follower.step_candidate(self, m)

    def _handle_vote_request(self, m: Message) -> None:
        resp = MT.VOTE_RESP if m.type is MT.VOTE else MT.PRE_VOTE_RESP
        can_vote = (
            self.vote == m.frm  # a repeated request we already granted
            or (self.vote == NONE and self.lead == NONE)  # §5.2: first come, first served per term
            or (m.type is MT.PRE_VOTE and m.term > self.term)  # a PreVote is for a future term
        )
        # §5.4.1: grant only to a candidate whose log is at least as up-to-date as ours.
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self.send(Message(resp, to=m.frm, term=m.term))
            if m.type is MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(Message(resp, to=m.frm, term=self.term, reject=True))

    # Elections.

    def hup(self, kind: CampaignType) -> None:
        if self.role is Role.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            # Our configuration may be about to change; campaigning with the old one is unsafe.
            return
        self.campaign(kind)

    def _has_unapplied_conf_change(self) -> bool:
        if self.log.committed <= self.log.applied:
            return False
        pending = self.log.slice(self.log.applied + 1, self.log.committed + 1, None)
        return any(e.type is EntryType.CONF_CHANGE for e in pending)

    def campaign(self, kind: CampaignType) -> None:
        if kind is CampaignType.PRE_ELECTION:
            self.become_pre_candidate()
            request, term = MT.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            request, term = MT.VOTE, self.term
        if self.poll(self.id, True) is VoteResult.WON:
            # A single voter wins at once.
            if kind is CampaignType.PRE_ELECTION:
                self.campaign(CampaignType.ELECTION)
            else:
                self.become_leader()
            return
        context = CAMPAIGN_TRANSFER if kind is CampaignType.TRANSFER else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in self.conf_state.voters:
            if voter != self.id:
                self.send(Message(request, to=voter, term=term, index=last_index, log_term=last_term, context=context))

    def poll(self, node: int, granted: bool) -> VoteResult:
        self.votes.setdefault(node, granted)  # the first answer counts
        return vote_result(self.conf_state.voters, self.votes)

    # Membership.

    def restore_conf(self, conf: ConfState) -> None:
        """Reset every Progress to the given membership (start-up and snapshot restore)."""
        self.progress = {}
        self._switch_conf(conf)

    def _switch_conf(self, conf: ConfState) -> None:
        last = self.log.last_index()
        progress: dict[int, Progress] = {}
        for node in sorted(conf.voters + conf.learners):
            pr = self.progress.get(node)
            if pr is None:
                pr = Progress(last + 1, self.max_inflight)
                # Give a new member an election timeout before CheckQuorum counts it as inactive.
                pr.recent_active = True
                if node == self.id and self.role is Role.LEADER:
                    pr.match = last
            pr.is_learner = node in conf.learners
            progress[node] = pr
        self.progress = progress
        self.conf_state = conf
        self.is_learner = self.id in conf.learners

    def removes_self(self, entry: Entry) -> bool:
        """Whether `entry` is a conf change that would take our vote away."""
        if entry.type is not EntryType.CONF_CHANGE:
            return False
        try:
            change = ConfChange.decode(entry.data)
        except ValueError:
            return False
        removing = change.type in (ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER)
        return change.node_id == self.id and removing

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed conf change; returns the new membership.

        A change that would leave no voters is ignored (the leader never proposes one).
        """
        try:
            conf = apply_change(self.conf_state, change)
        except ConfChangeError:
            return self.conf_state
        self._switch_conf(conf)
        self.pending_self_removal = False
        if self.role is not Role.LEADER:
            return conf
        if self.id not in conf.voters:
            leader.hand_off(self)
            return conf
        if self.lead_transferee != NONE and self.lead_transferee not in conf.voters:
            self.abort_leader_transfer()
        if leader.maybe_commit(self):
            leader.bcast_append(self)  # a smaller quorum may commit more
        else:
            for node in self.progress:
                if node != self.id:
                    leader.maybe_send_append(self, node, send_if_empty=False)
        return conf
