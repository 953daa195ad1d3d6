"""Tests named after the rules of the Raft paper (Ongaro & Ousterhout, 2014), section by section.

Each test sets up nodes, acts, and checks the sentence it is named after. Classic Raft: PreVote and
CheckQuorum are off here (they have their own tests).
"""

from __future__ import annotations

import pytest
from corral.consensus.raft.types import NONE, Entry, HardState, Message, MessageType, Role

from tests.consensus.raft.helpers import (
    Network,
    elapse_election,
    make_storage,
    new_network,
    new_raft,
    types_of,
)

MT = MessageType


def app(
    frm: int,
    to: int,
    term: int,
    log_term: int,
    index: int,
    entries: list[Entry] | None = None,
    commit: int = 0,
) -> Message:
    return Message(
        MT.APP,
        to=to,
        frm=frm,
        term=term,
        log_term=log_term,
        index=index,
        entries=tuple(entries or ()),
        commit=commit,
    )


# §5.1 Raft basics


def test_nodes_start_as_followers() -> None:
    r = new_raft(1)
    assert (r.role, r.term, r.lead) == (Role.FOLLOWER, 0, NONE)


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
def test_a_node_seeing_a_higher_term_updates_its_term_and_becomes_follower(role: Role) -> None:
    # §5.1: "If a server's current term is smaller than the other's, it updates its term ...
    # If a candidate or leader discovers that its term is out of date, it reverts to follower."
    r = new_raft(1)
    if role is not Role.FOLLOWER:
        r.become_candidate()
    if role is Role.LEADER:
        r.become_leader()
    r.step(app(2, 1, term=5, log_term=0, index=0))
    assert (r.role, r.term, r.lead) == (Role.FOLLOWER, 5, 2)


def test_a_node_ignores_requests_with_a_stale_term() -> None:
    # §5.1: "If a server receives a request with a stale term number, it rejects the request."
    r = new_raft(1)
    r.become_follower(3, 2)
    r.step(app(2, 1, term=2, log_term=0, index=0, commit=0))
    r.step(Message(MT.VOTE, to=1, frm=3, term=2, index=9, log_term=2))
    assert r.read_messages() == []
    assert (r.term, r.lead, r.vote) == (3, 2, NONE)


# §5.2 Leader election


def test_leader_sends_heartbeats_every_heartbeat_timeout() -> None:
    # §5.2: "leaders send periodic heartbeats ... to all followers in order to maintain their authority."
    r = new_raft(1, heartbeat_tick=2)
    r.become_candidate()
    r.become_leader()
    r.read_messages()
    r.tick()
    assert r.read_messages() == []
    r.tick()
    msgs = r.read_messages()
    assert types_of(msgs) == [MT.HEARTBEAT, MT.HEARTBEAT]
    assert sorted(m.to for m in msgs) == [2, 3] and all(m.term == 1 for m in msgs)


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE])
def test_election_timeout_starts_an_election(role: Role) -> None:
    # §5.2: "To begin an election, a follower increments its current term and transitions to
    # candidate state. It then votes for itself and issues RequestVote RPCs." A candidate whose
    # election times out starts a new one the same way.
    r = new_raft(1)
    if role is Role.CANDIDATE:
        r.become_candidate()
    start = r.term
    elapse_election(r)
    assert (r.role, r.term, r.vote) == (Role.CANDIDATE, start + 1, 1)
    assert r.votes == {1: True}
    msgs = [m for m in r.read_messages() if m.term == start + 1]
    assert sorted((m.type, m.to) for m in msgs) == [(MT.VOTE, 2), (MT.VOTE, 3)]


@pytest.mark.parametrize(
    ("size", "grants", "role"),
    [
        (1, {}, Role.LEADER),
        (3, {2: True, 3: True}, Role.LEADER),
        (3, {2: True}, Role.LEADER),
        (5, {2: True, 3: True}, Role.LEADER),
        (5, {2: True}, Role.CANDIDATE),
        (5, {2: False, 3: False}, Role.CANDIDATE),
        (5, {2: False, 3: False, 4: False}, Role.FOLLOWER),
        (3, {2: False, 3: False}, Role.FOLLOWER),
    ],
)
def test_candidate_wins_with_a_majority_of_votes(size: int, grants: dict[int, bool], role: Role) -> None:
    # §5.2: "A candidate wins an election if it receives votes from a majority of the servers."
    r = new_raft(1, tuple(range(1, size + 1)))
    r.step(Message(MT.HUP, frm=1))
    for voter, granted in grants.items():
        r.step(Message(MT.VOTE_RESP, to=1, frm=voter, term=r.term, reject=not granted))
    assert r.role is role
    assert r.term == 1


@pytest.mark.parametrize(
    ("vote", "candidate", "granted"),
    [(NONE, 2, True), (NONE, 3, True), (2, 2, True), (3, 3, True), (2, 3, False), (3, 2, False)],
)
def test_each_node_votes_for_at_most_one_candidate_per_term(vote: int, candidate: int, granted: bool) -> None:
    # §5.2: "each server will vote for at most one candidate in a given term, on a
    # first-come-first-served basis."
    r = new_raft(1, storage=make_storage(hard_state=HardState(term=1, vote=vote)))
    r.step(Message(MT.VOTE, to=1, frm=candidate, term=1))
    (resp,) = r.read_messages()
    assert (resp.type, resp.to, resp.reject) == (MT.VOTE_RESP, candidate, not granted)


def test_follower_that_knows_the_leader_does_not_vote_for_another_candidate_in_its_term() -> None:
    # §5.2: a follower hearing from a valid leader has no reason to elect another one this term
    # (etcd's rule: vote only if we have not voted and know no leader).
    r = new_raft(1)
    r.become_follower(1, 2)
    r.step(Message(MT.VOTE, to=1, frm=3, term=1, index=5, log_term=1))
    (resp,) = r.read_messages()
    assert resp.reject and r.vote == NONE


@pytest.mark.parametrize("term", [1, 2])
def test_candidate_steps_down_when_another_leader_appends(term: int) -> None:
    # §5.2: "If the leader's term ... is at least as large as the candidate's current term, then the
    # candidate recognizes the leader as legitimate and returns to follower state."
    r = new_raft(1)
    r.step(Message(MT.HUP, frm=1))
    assert r.term == 1
    r.step(app(2, 1, term=term, log_term=0, index=0))
    assert (r.role, r.term, r.lead) == (Role.FOLLOWER, term, 2)


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE])
def test_election_timeouts_are_randomized_in_one_to_two_timeouts(role: Role) -> None:
    # §5.2: "election timeouts are chosen randomly from a fixed interval" ([et, 2*et) here).
    seen = set()
    for seed in range(60):
        r = new_raft(1, election_tick=10, seed=seed)
        if role is Role.CANDIDATE:
            r.become_candidate()
        term = r.term
        ticks = 0
        while r.term == term:
            r.tick()
            ticks += 1
        assert 10 <= ticks < 20
        seen.add(ticks)
    assert len(seen) > 5


def test_the_same_seed_gives_the_same_timeouts() -> None:
    def timeouts(seed: int) -> list[int]:
        r = new_raft(1, seed=seed)
        out = []
        for _ in range(8):
            r.become_follower(r.term + 1, NONE)
            out.append(r.randomized_election_timeout)
        return out

    assert timeouts(7) == timeouts(7)
    assert timeouts(7) != timeouts(8)


def test_split_votes_resolve_by_new_elections() -> None:
    # §5.2: split votes are resolved by randomized timeouts: eventually one candidate wins.
    net = new_network(1, 2, 3, 4)
    net.cut(1, 2)
    net.cut(1, 4)
    net.cut(3, 2)
    net.cut(3, 4)
    net.campaign(1)
    net.campaign(3)  # 1 and 3 each hold two votes of four: no winner in term 1
    net.recover()
    assert all(r.role is not Role.LEADER for r in net.peers.values())
    for _ in range(40):
        for i in sorted(net.peers):
            net.tick(i)
        if any(r.role is Role.LEADER for r in net.peers.values()):
            break
    leaders = [r.id for r in net.peers.values() if r.role is Role.LEADER]
    assert len(leaders) == 1


def test_at_most_one_leader_per_term() -> None:
    # §5.2 Election Safety: with partitions, two candidates of one term never both win.
    net = new_network(1, 2, 3, 4, 5)
    net.cut(1, 4)
    net.cut(1, 5)
    net.cut(2, 4)
    net.cut(2, 5)
    net.cut(3, 4)
    net.cut(3, 5)
    net.campaign(1)
    net.campaign(4)
    leaders = {r.id for r in net.peers.values() if r.role is Role.LEADER}
    assert leaders == {1}
    assert net.peers[4].role is Role.CANDIDATE


# §5.3 Log replication


def leader_of(net: Network, node_id: int = 1) -> None:
    net.campaign(node_id)
    assert net.peers[node_id].role is Role.LEADER


def test_leader_appends_a_proposal_and_sends_it_with_the_preceding_index_and_term() -> None:
    # §5.3: "The leader appends the command to its log as a new entry, then issues AppendEntries
    # RPCs in parallel to each of the other servers." Each carries the preceding entry's index/term.
    r = new_raft(1)
    r.become_candidate()
    r.become_leader()  # appends the empty entry 1/1
    for node in (2, 3):
        r.step(Message(MT.APP_RESP, to=1, frm=node, term=1, index=1))
    r.read_messages()
    r.step(Message(MT.PROP, frm=1, entries=(Entry(0, 0, b"x"),)))
    assert r.log.last_index() == 2
    msgs = sorted(r.read_messages(), key=lambda m: m.to)
    assert [(m.type, m.to, m.index, m.log_term, m.commit) for m in msgs] == [
        (MT.APP, 2, 1, 1, 1),
        (MT.APP, 3, 1, 1, 1),
    ]
    assert all(m.entries == (Entry(1, 2, b"x"),) for m in msgs)


@pytest.mark.parametrize(
    ("size", "acks", "committed"),
    [
        (1, [], True),
        (3, [], False),
        (3, [2], True),
        (5, [2], False),
        (5, [2, 3], True),
        (5, [2, 3, 4, 5], True),
    ],
)
def test_leader_commits_an_entry_once_a_majority_stores_it(size: int, acks: list[int], committed: bool) -> None:
    # §5.3: "A log entry is committed once the leader that created the entry has replicated it on a
    # majority of the servers."
    r = new_raft(1, tuple(range(1, size + 1)))
    r.become_candidate()
    r.become_leader()
    r.step(Message(MT.PROP, frm=1, entries=(Entry(0, 0, b"x"),)))
    for node in acks:
        r.step(Message(MT.APP_RESP, to=1, frm=node, term=1, index=2))
    assert (r.log.committed == 2) is committed


def test_committing_an_entry_commits_all_preceding_entries() -> None:
    # §5.3: committing an entry "also commits all preceding entries in the leader's log, including
    # entries created by previous leaders."
    r = new_raft(1, terms=(1, 1))
    r.become_follower(1, NONE)
    r.become_candidate()
    r.become_leader()  # term 2, appends 2/3
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=2, index=3))
    assert r.log.committed == 3


def test_followers_learn_the_commit_index_and_apply() -> None:
    # §5.3: "Once a follower learns that a log entry is committed, it applies the entry."
    net = new_network()
    leader_of(net)
    net.propose(1, b"x")
    for node in (2, 3):
        f = net.peers[node]
        assert f.log.committed == 2
        assert [e.data for e in f.log.next_committed_entries()] == [b"", b"x"]


def test_follower_rejects_append_without_the_preceding_entry() -> None:
    # §5.3: "If the follower does not find an entry in its log with the same index and term, then
    # it refuses the new entries."
    r = new_raft(1, terms=(1, 2))
    r.become_follower(2, 2)
    r.step(app(2, 1, term=2, log_term=3, index=2, entries=[Entry(3, 3)]))  # our term at 2 is 2
    r.step(app(2, 1, term=2, log_term=2, index=3, entries=[Entry(2, 4)]))  # we lack index 3
    msgs = r.read_messages()
    assert [(m.type, m.reject, m.index) for m in msgs] == [(MT.APP_RESP, True, 2), (MT.APP_RESP, True, 3)]
    assert r.log.last_index() == 2


@pytest.mark.parametrize(
    ("index", "log_term", "entries", "result"),
    [
        (2, 2, [Entry(3, 3)], [1, 2, 3]),
        (1, 1, [Entry(3, 2), Entry(4, 3)], [1, 3, 4]),
        (0, 0, [Entry(1, 1)], [1, 2]),
        (0, 0, [Entry(3, 1)], [3]),
    ],
)
def test_follower_deletes_conflicting_entries_and_appends_new_ones(
    index: int, log_term: int, entries: list[Entry], result: list[int]
) -> None:
    # §5.3: "If an existing entry conflicts with a new one (same index but different terms), delete
    # the existing entry and all that follow it; append any new entries not already in the log."
    r = new_raft(1, terms=(1, 2))
    r.become_follower(2, 2)
    r.step(app(2, 1, term=2, log_term=log_term, index=index, entries=entries))
    assert [e.term for e in r.log.all_entries()] == result
    (resp,) = r.read_messages()
    assert not resp.reject


# Figure 7: a leader in term 8 with (possible) follower logs (a)-(f).
LEADER_LOG = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)
FOLLOWER_LOGS = [
    (1, 1, 1, 4, 4, 5, 5, 6, 6),
    (1, 1, 1, 4),
    (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
    (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
    (1, 1, 1, 4, 4, 4, 4),
    (1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
]


@pytest.mark.parametrize("follower_log", FOLLOWER_LOGS)
def test_leader_brings_follower_logs_into_agreement_with_its_own(follower_log: tuple[int, ...]) -> None:
    # §5.3 (Figure 7): "the leader handles inconsistencies by forcing the followers' logs to
    # duplicate its own" -- using fast backtracking, in few round trips.
    leader = new_raft(1, storage=make_storage(terms=LEADER_LOG, hard_state=HardState(term=8)))
    follower = new_raft(2, storage=make_storage(terms=follower_log, hard_state=HardState(term=7)))
    voter = new_raft(3, storage=make_storage(terms=LEADER_LOG, hard_state=HardState(term=7)))
    net = Network(leader, follower, voter)
    rejections: list[Message] = []
    original_step = follower.step

    def counting_step(m: Message) -> None:
        original_step(m)
        rejections.extend(x for x in follower.msgs if x.type is MT.APP_RESP and x.reject)

    follower.step = counting_step  # type: ignore[method-assign]
    net.campaign(1)
    assert leader.role is Role.LEADER and leader.term == 9  # no-op 9/11 appended
    net.propose(1, b"x")
    assert [e.term for e in follower.log.all_entries()] == list(LEADER_LOG) + [9, 9]
    assert len(rejections) <= 3  # one per conflicting term, not one per entry


# §5.4 Safety


@pytest.mark.parametrize(
    ("our_terms", "cand_index", "cand_term", "granted"),
    [
        ((1, 1), 2, 1, True),  # same last term, same length
        ((1, 1), 3, 1, True),  # same last term, longer
        ((1, 1), 1, 1, False),  # same last term, shorter
        ((1, 2), 1, 3, True),  # later last term, shorter
        ((1, 2), 5, 1, False),  # earlier last term, longer
        ((1, 2), 2, 2, True),
    ],
)
def test_voter_grants_only_to_candidates_at_least_as_up_to_date(
    our_terms: tuple[int, ...], cand_index: int, cand_term: int, granted: bool
) -> None:
    # §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the candidate."
    r = new_raft(1, terms=our_terms)
    r.step(Message(MT.VOTE, to=1, frm=2, term=3, index=cand_index, log_term=cand_term))
    (resp,) = r.read_messages()
    assert resp.reject is not granted
    assert r.vote == (2 if granted else NONE)
    assert r.term == 3


@pytest.mark.parametrize(("last_term_acked", "commits"), [(2, False), (3, True)])
def test_leader_commits_only_entries_of_its_own_term_by_counting_replicas(last_term_acked: int, commits: bool) -> None:
    # §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only log
    # entries from the leader's current term are committed by counting replicas."
    r = new_raft(1, storage=make_storage(terms=(1, 2), hard_state=HardState(term=2)))
    r.become_candidate()
    r.become_leader()  # term 3, no-op at 3
    assert r.log.last_term() == 3
    ack_index = 2 if last_term_acked == 2 else 3
    r.step(Message(MT.APP_RESP, to=1, frm=2, term=3, index=ack_index))
    assert r.log.committed == (3 if commits else 0)


def test_figure_8_an_old_term_entry_on_a_majority_is_not_yet_committed() -> None:
    # §5.4.2 Figure 8 (c): S1 leads term 4 with log [1, 2]; S2 and S3 acknowledge the term-2 entry,
    # so it is on a majority -- yet S5 (log [1, 3]) could still be elected and overwrite it. Only
    # once the term-4 entry is on a majority are both committed.
    voters = (1, 2, 3, 4, 5)
    s1 = new_raft(1, voters, storage=make_storage(voters, (1, 2), hard_state=HardState(term=3, commit=1)))
    s1.become_candidate()
    s1.become_leader()
    assert (s1.term, s1.log.last_index()) == (4, 3)
    for node in (2, 3):
        s1.step(Message(MT.APP_RESP, to=1, frm=node, term=4, index=2))
    assert s1.log.committed == 1
    s2 = new_raft(2, voters, storage=make_storage(voters, (1, 2), hard_state=HardState(term=4)))
    s2.step(Message(MT.VOTE, to=2, frm=5, term=5, index=2, log_term=3))
    assert not s2.read_messages()[0].reject  # S5 can indeed still win: committing 2/2 was unsafe
    for node in (2, 3):
        s1.step(Message(MT.APP_RESP, to=1, frm=node, term=4, index=3))
    assert s1.log.committed == 3
