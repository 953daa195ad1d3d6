"""Errors raised by the Raft core and its storage."""

from __future__ import annotations


class RaftError(Exception):
    """Base of every error the Raft core raises on purpose."""


class ProposalDropped(RaftError):
    """A proposal was not appended: no known leader, a transfer in progress, or this node was removed.

    The caller may retry later; nothing was written.
    """


class StorageError(RaftError):
    """Base of the errors a Storage raises for indexes it cannot serve."""


class Compacted(StorageError):
    """The requested index precedes the first available entry (it was compacted into a snapshot)."""


class Unavailable(StorageError):
    """The requested index is beyond the last stored entry."""


class SnapshotOutOfDate(StorageError):
    """The snapshot is not newer than the one already held."""


class SnapshotTemporarilyUnavailable(StorageError):
    """The snapshot is being prepared; the leader will try again later."""


class InvariantViolation(RaftError):
    """A Raft safety invariant would be broken (a bug or corrupted storage); the node must stop."""
