"""RaftConfig: everything a Raft node needs besides its storage."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class ReadOnlyOption(enum.Enum):
    SAFE = "safe"  # ReadIndex confirms leadership with a heartbeat round (§6.4 of the Raft thesis)
    LEASE_BASED = "lease-based"  # trusts the check-quorum lease; relies on bounded clock drift


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """Time is counted in ticks: the driver decides how long a tick is.

    `rng` is the only source of randomness (election timeout jitter); seed it for reproducible runs.
    `applied` is the last index the application already applied before a restart.
    """

    id: int
    rng: random.Random
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int | None = 1 << 20  # payload bytes per APP; None means unlimited
    max_committed_size_per_ready: int | None = None  # payload bytes of committed entries per Ready
    max_inflight_msgs: int = 256
    check_quorum: bool = True
    pre_vote: bool = True
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    applied: int = 0

    def validate(self) -> None:
        """Raise ValueError for a configuration the core cannot run with."""
        if self.id <= 0:
            raise ValueError("id must be a positive int (0 means no node)")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be greater than 0")
        for name in ("max_size_per_msg", "max_committed_size_per_ready"):
            limit = getattr(self, name)
            if limit is not None and limit < 0:
                raise ValueError(f"{name} must be None or >= 0")
        if self.applied < 0:
            raise ValueError("applied must be >= 0")
        if self.read_only_option is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ValueError("lease-based reads need check_quorum, or the lease is not a lease")
        if not isinstance(self.rng, random.Random):
            raise ValueError("rng must be a random.Random instance")
