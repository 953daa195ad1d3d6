"""PreVote (thesis §9.6), CheckQuorum (thesis §6.2) and the leader lease against disruptive
servers (thesis §4.2.3)."""

from __future__ import annotations

from corral.consensus.raft.types import NONE, Message, MessageType, Role

from tests.consensus.raft.helpers import Network, new_network, new_raft, types_of

MT = MessageType


def elected(net: Network, node_id: int = 1) -> None:
    net.campaign(node_id)
    assert net.peers[node_id].role is Role.LEADER


def test_prevote_campaign_raises_the_term_once_after_a_successful_pre_election() -> None:
    net = new_network(pre_vote=True)
    r = net.peers[1]
    r.step(Message(MT.HUP, frm=1))
    assert (r.role, r.term) == (Role.PRE_CANDIDATE, 0)
    msgs = r.read_messages()
    assert types_of(msgs) == [MT.PRE_VOTE, MT.PRE_VOTE]
    assert all(m.term == 1 for m in msgs)  # asks about the next term without entering it
    net.send(*msgs)
    assert (r.role, r.term) == (Role.LEADER, 1)


def test_prevote_request_changes_neither_term_nor_vote_of_the_receiver() -> None:
    r = new_raft(2, pre_vote=True)
    r.step(Message(MT.PRE_VOTE, to=2, frm=1, term=5, index=0, log_term=0))
    (resp,) = r.read_messages()
    assert (resp.type, resp.term, resp.reject) == (MT.PRE_VOTE_RESP, 5, False)
    assert (r.term, r.vote) == (0, NONE)


def test_prevote_is_rejected_for_a_stale_log() -> None:
    r = new_raft(2, pre_vote=True, terms=(1, 2))
    r.step(Message(MT.PRE_VOTE, to=2, frm=1, term=3, index=5, log_term=1))
    (resp,) = r.read_messages()
    assert resp.reject and resp.term == 0


def test_isolated_node_with_prevote_never_raises_its_term() -> None:
    net = new_network(pre_vote=True)
    elected(net)
    net.isolate(3)
    net.tick(3, 100)
    r3 = net.peers[3]
    assert r3.term == 1
    assert r3.role is Role.PRE_CANDIDATE


def test_rejoining_node_with_prevote_does_not_depose_a_healthy_leader() -> None:
    net = new_network(pre_vote=True, check_quorum=True)
    elected(net)
    net.isolate(3)
    net.propose(1, b"while 3 is away")
    net.tick(3, 100)
    net.recover()
    net.tick(3, 30)  # 3 keeps pre-campaigning: 1 and 2 are in lease and ignore it
    net.tick(1)  # a heartbeat brings 3 back
    assert net.peers[1].role is Role.LEADER and net.peers[1].term == 1
    assert (net.peers[3].role, net.peers[3].lead, net.peers[3].term) == (Role.FOLLOWER, 1, 1)


def test_without_prevote_or_check_quorum_a_rejoining_node_disrupts_the_leader() -> None:
    # The problem PreVote solves: the isolated node's inflated term deposes the leader on return.
    net = new_network()
    elected(net)
    net.isolate(3)
    net.tick(3, 100)
    assert net.peers[3].term > 1
    net.recover()
    net.tick(3, 30)
    assert net.peers[1].role is not Role.LEADER or net.peers[1].term > 1


def test_check_quorum_leader_steps_down_after_an_election_timeout_without_a_quorum() -> None:
    net = new_network(check_quorum=True)
    elected(net)
    net.isolate(1)
    leader = net.peers[1]
    # Activity is judged per election-timeout window; the window in which the partition began
    # still saw replies, so the leader notices within two timeouts.
    net.tick(1, leader.election_timeout)
    assert leader.role is Role.LEADER
    net.tick(1, leader.election_timeout)
    assert (leader.role, leader.lead, leader.term) == (Role.FOLLOWER, NONE, 1)


def test_check_quorum_leader_stays_while_a_quorum_answers() -> None:
    net = new_network(check_quorum=True)
    elected(net)
    net.isolate(3)  # one follower down: 1 and 2 are still a quorum
    net.tick(1, 10 * net.peers[1].election_timeout)
    assert net.peers[1].role is Role.LEADER


def test_leader_lease_ignores_vote_requests_from_a_disruptive_server() -> None:
    # CheckQuorum without PreVote: 2 heard from the leader recently, so it ignores 3's higher-term
    # vote request entirely -- no term change, no reply.
    net = new_network(check_quorum=True)
    elected(net)
    r2 = net.peers[2]
    r2.step(Message(MT.VOTE, to=2, frm=3, term=5, index=10, log_term=1))
    assert r2.read_messages() == []
    assert (r2.term, r2.lead, r2.vote) == (1, 1, 1)


def test_stale_leader_learns_of_a_newer_term_and_steps_down() -> None:
    # With CheckQuorum, a follower answers a lower-term heartbeat so an old leader steps down.
    r = new_raft(2, check_quorum=True)
    r.become_follower(5, 3)
    r.step(Message(MT.HEARTBEAT, to=2, frm=1, term=2))
    (resp,) = r.read_messages()
    assert (resp.type, resp.to, resp.term) == (MT.APP_RESP, 1, 5)
    old = new_raft(1, check_quorum=True)
    old.become_candidate()
    old.become_leader()
    old.step(resp)
    assert (old.role, old.term) == (Role.FOLLOWER, 5)


def test_rejoining_node_with_a_higher_term_cannot_win_with_a_stale_log() -> None:
    # CheckQuorum without PreVote: the isolated node's term deposes the leader, but its stale log
    # loses the election (§5.4.1); one of the up-to-date nodes leads in a newer term.
    net = new_network(check_quorum=True)
    elected(net)
    net.isolate(3)
    net.propose(1, b"x")
    net.tick(3, 50)
    high = net.peers[3].term
    net.recover()
    for _ in range(200):
        for i in (1, 2, 3):
            net.tick(i)
        leaders = [r for r in net.peers.values() if r.role is Role.LEADER]
        if leaders and leaders[0].term > high:
            break
    (leader,) = [r for r in net.peers.values() if r.role is Role.LEADER]
    assert leader.id in (1, 2) and leader.term > high


def test_learners_never_campaign() -> None:
    net = Network(
        new_raft(1, (1, 2), learners=(3,)),
        new_raft(2, (1, 2), learners=(3,)),
        new_raft(3, (1, 2), learners=(3,)),
    )
    learner = net.peers[3]
    assert learner.is_learner and not learner.promotable()
    net.tick(3, 100)
    assert learner.role is Role.FOLLOWER and learner.term == 0
    learner.step(Message(MT.TIMEOUT_NOW, to=3, frm=1, term=0))
    assert learner.role is Role.FOLLOWER


def test_pre_candidate_returns_to_follower_when_a_leader_appears() -> None:
    r = new_raft(1, pre_vote=True)
    r.become_follower(1, NONE)
    r.step(Message(MT.HUP, frm=1))
    assert r.role is Role.PRE_CANDIDATE
    r.step(Message(MT.HEARTBEAT, to=1, frm=2, term=1))
    assert (r.role, r.lead, r.term) == (Role.FOLLOWER, 2, 1)


def test_pre_candidate_gives_up_after_a_quorum_of_rejections() -> None:
    r = new_raft(1, pre_vote=True)
    r.step(Message(MT.HUP, frm=1))
    r.step(Message(MT.PRE_VOTE_RESP, to=1, frm=2, term=0, reject=True))
    assert r.role is Role.PRE_CANDIDATE
    r.step(Message(MT.PRE_VOTE_RESP, to=1, frm=3, term=0, reject=True))
    assert (r.role, r.term) == (Role.FOLLOWER, 0)


def test_single_voter_elects_itself() -> None:
    for pre_vote in (False, True):
        r = new_raft(1, (1,), pre_vote=pre_vote)
        r.step(Message(MT.HUP, frm=1))
        assert (r.role, r.term, r.log.committed) == (Role.LEADER, 1, 1)
