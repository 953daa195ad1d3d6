"""Membership changes, one node at a time (§4.1 of the Raft thesis; no joint consensus).

Changing one voter at a time keeps any majority of the old configuration overlapping any majority of
the new one, so two leaders cannot be elected for one term across the change. The leader admits a
new change only after the previous one is applied (see `Raft.pending_conf_index`).
"""

from __future__ import annotations

from corral.consensus.raft.types import ConfChange, ConfChangeType, ConfState


class ConfChangeError(ValueError):
    """The change cannot be applied to this configuration (it would leave no voters)."""


def apply_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The configuration after `change`. Changes that alter nothing return `conf` unchanged.

    ADD_VOTER on a learner promotes it; ADD_LEARNER on a voter demotes it; UPDATE_NODE changes nothing
    here (the application keeps what its context says).
    """
    if change.node_id <= 0:
        raise ConfChangeError(f"invalid node id {change.node_id}")
    if change.type is ConfChangeType.UPDATE_NODE:
        if not conf.contains(change.node_id):
            raise ConfChangeError(f"UPDATE_NODE {change.node_id}: not a member")
        return conf
    voters = dict.fromkeys(conf.voters)
    learners = dict.fromkeys(conf.learners)
    node = change.node_id
    if change.type is ConfChangeType.ADD_VOTER:
        learners.pop(node, None)
        voters[node] = None
    elif change.type is ConfChangeType.ADD_LEARNER:
        voters.pop(node, None)
        learners[node] = None
    elif change.type is ConfChangeType.REMOVE_NODE:
        voters.pop(node, None)
        learners.pop(node, None)
    if not voters:
        raise ConfChangeError(f"{change.type.name} {node} would leave no voters")
    return ConfState.of(list(voters), list(learners))


def validate_change(conf: ConfState, change: ConfChange) -> str | None:
    """Why the leader should refuse to propose `change` now, or None if it may."""
    try:
        apply_change(conf, change)
    except ConfChangeError as exc:
        return str(exc)
    return None
