"""The member registry built from conf changes, and the checks made before a change is proposed."""

from __future__ import annotations

import pytest
from corral.consensus import log
from corral.consensus.membership import (
    NO_REQUEST,
    Member,
    Membership,
    bootstrap_changes,
    check_add,
    check_promote,
    check_remove,
    decode_context,
    encode_context,
    member_id,
)
from corral.consensus.raft import ConfChange, ConfChangeType

ADD, LEARNER, REMOVE, UPDATE = (
    ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE_NODE, ConfChangeType.UPDATE_NODE,
)  # fmt: skip


def apply(registry: Membership, kind: ConfChangeType, node: int, **fields: object) -> None:
    change = ConfChange(kind, node, encode_context(NO_REQUEST, **fields))
    registry.apply(change, decode_context(change.context)[1])


def founded(*names: str) -> Membership:
    members = [Member(i, name, (f"http://h:{i}",)) for i, name in enumerate(names, 1)]
    registry = Membership()
    for change in bootstrap_changes(members, cluster=77):
        registry.apply(change, decode_context(change.context)[1])
    return registry


def test_bootstrap_changes_found_the_cluster_with_names_urls_and_its_id() -> None:
    registry = founded("a", "b", "c")
    assert registry.cluster_id == 77
    assert [(m.id, m.name, m.peer_urls, m.is_learner) for m in registry.sorted_members()] == [
        (1, "a", ("http://h:1",), False), (2, "b", ("http://h:2",), False), (3, "c", ("http://h:3",), False),
    ]  # fmt: skip


def test_changes_add_promote_update_publish_and_remove() -> None:
    registry = founded("a", "b", "c")
    apply(registry, LEARNER, 9, peerURLs=["http://h:9"])
    assert registry.members[9] == Member(9, "", ("http://h:9",), (), True)
    apply(registry, UPDATE, 9, name="d", clientURLs=["http://c:9"])
    apply(registry, ADD, 9)
    assert registry.members[9] == Member(9, "d", ("http://h:9",), ("http://c:9",), False)
    apply(registry, UPDATE, 9, peerURLs=["http://h:10"])
    assert registry.peer_urls()[9] == "http://h:10"
    apply(registry, REMOVE, 9)
    assert 9 not in registry.members and 9 in registry.removed
    apply(registry, ADD, 9, peerURLs=["http://h:9"])  # a removed id never comes back
    assert 9 not in registry.members


def test_registry_round_trips_through_its_encoding() -> None:
    registry = founded("a", "b")
    apply(registry, REMOVE, 2)
    copy = Membership.decode(registry.encode())
    assert (copy.members, copy.removed, copy.cluster_id) == (registry.members, registry.removed, 77)


def test_a_malformed_context_carries_no_fields() -> None:
    assert decode_context(bytes(16) + b"{not json") == (bytes(16), {})
    assert decode_context(bytes(16) + b"[1]") == (bytes(16), {})


def test_member_ids_come_from_sorted_peer_urls_and_the_token() -> None:
    assert member_id(["http://b:1", "http://a:1"], "t") == member_id(["http://a:1", "http://b:1"], "t")
    assert member_id(["http://a:1"], "t") != member_id(["http://a:1"], "u")


def test_add_refuses_clashes_and_a_second_learner() -> None:
    registry = founded("a", "b", "c")
    everyone = {1, 2, 3}
    with pytest.raises(log.PeerURLExists):
        check_add(registry, 50, ("http://h:2",), False, everyone)
    with pytest.raises(log.MemberExists):
        check_add(registry, 2, ("http://new:1",), False, everyone)
    check_add(registry, 50, ("http://new:1",), True, everyone)
    apply(registry, LEARNER, 50, peerURLs=["http://new:1"])
    with pytest.raises(log.TooManyLearners):
        check_add(registry, 51, ("http://new:2",), True, everyone)


def test_adding_a_voter_needs_every_voter_reachable() -> None:
    registry = founded("a", "b", "c")
    check_add(registry, 50, ("http://new:1",), False, {1, 2, 3})
    with pytest.raises(log.NotEnoughStartedMembers):
        check_add(registry, 50, ("http://new:1",), False, {1, 2})


def test_a_one_member_cluster_may_grow() -> None:
    check_add(founded("a"), 50, ("http://new:1",), False, {1})


def test_removal_keeps_a_reachable_quorum() -> None:
    registry = founded("a", "b", "c")
    with pytest.raises(log.MemberNotFound):
        check_remove(registry, 99, {1, 2, 3})
    check_remove(registry, 3, {1, 2, 3})
    check_remove(registry, 3, {1, 2})  # a member that is down is safe to remove
    with pytest.raises(log.NotEnoughStartedMembers):
        check_remove(registry, 3, {1, 3})  # the two left would be 1 and 2, and 2 is unreachable


def test_promotion_needs_a_learner_that_caught_up() -> None:
    registry = founded("a", "b", "c")
    apply(registry, LEARNER, 50, peerURLs=["http://new:1"])
    everyone = {1, 2, 3, 50}
    with pytest.raises(log.NotLearner):
        check_promote(registry, 2, 100, 100, everyone)
    with pytest.raises(log.MemberNotFound):
        check_promote(registry, 99, 100, 100, everyone)
    with pytest.raises(log.LearnerNotReady):
        check_promote(registry, 50, 89, 100, everyone)
    check_promote(registry, 50, 90, 100, everyone)
