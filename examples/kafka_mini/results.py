"""What the scenario measured and checked, and the report the example prints.

`Results.timings` holds each recovery step's time in seconds after the kill; `Results.problems()` lists
every check that failed (empty when the scenario held up), so a test asserts on the same object the example
prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.client.recipes import NO_LEADER, PartitionState, TopicPartition

__all__ = ["STEPS", "Results"]

STEPS: dict[str, str] = {
    "corral_leader": "Corral leader elected",
    "broker_left": "registry: the dead broker's lease expired (leave seen)",
    "controller": "new controller elected (epoch + 1)",
    "partitions_led": "every partition has a live leader",
    "producer_rerouted": "producer: first ack on every rerouted partition",
    "consumer_committed": "consumer: first offset commit after the kill",
}


@dataclass
class Results:
    """Filled in by `driver.run_scenario`; read by the test and by the report."""

    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds after the kill
    killed_broker: int = 0
    killed_corral: str = ""
    new_corral_leader: str = ""
    controller_epoch_before: int = 0
    controller_epoch_after: int = 0
    new_controller: int = 0
    live_after: set[int] = field(default_factory=set)
    states_before: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    states_after: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    first_ack_after_kill: dict[TopicPartition, float] = field(default_factory=dict)  # rerouted partitions
    acked_before: int = 0
    acked_after: int = 0
    produce_retries: int = 0
    produce_failures: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # acknowledged, yet not on the current leader
    stored_twice: int = 0  # records a retry stored again (at-least-once)
    unconsumed: list[str] = field(default_factory=list)  # acknowledged, yet never delivered to the consumer
    offsets_before: dict[TopicPartition, int] = field(default_factory=dict)
    offsets_after: dict[TopicPartition, int] = field(default_factory=dict)
    offset_history: dict[TopicPartition, list[int]] = field(default_factory=dict)  # every stored commit, in order
    commits_before: int = 0
    commits_after: int = 0
    commit_errors: list[str] = field(default_factory=list)  # commits that failed and were made again
    total_seconds: float = 0.0

    @property
    def moved(self) -> list[TopicPartition]:
        """The partitions the killed broker led."""
        return sorted(tp for tp, state in self.states_before.items() if state.leader == self.killed_broker)

    def problems(self) -> list[str]:
        """Every check that failed, as a sentence."""
        found = [f"no time for {STEPS[step]!r}" for step in STEPS if step not in self.timings]
        if not self.new_corral_leader or self.new_corral_leader == self.killed_corral:
            found.append(f"no new Corral leader (killed {self.killed_corral}, now {self.new_corral_leader!r})")
        if self.controller_epoch_after != self.controller_epoch_before + 1:
            found.append(f"controller epoch {self.controller_epoch_before} -> {self.controller_epoch_after}")
        if self.new_controller in (0, self.killed_broker) or self.new_controller not in self.live_after:
            found.append(f"the new controller is broker {self.new_controller}")
        if not self.moved:
            found.append(f"broker {self.killed_broker} led no partition")
        found += self._leadership_problems()
        found += [f"never acknowledged again after the kill: {tp}" for tp in self.moved
                  if tp not in self.first_ack_after_kill]  # fmt: skip
        found += [f"produce failed: {failure}" for failure in self.produce_failures]
        found += [f"acknowledged but lost: {value}" for value in self.lost]
        found += [f"acknowledged but never consumed: {value}" for value in self.unconsumed]
        found += self._offset_problems()
        if self.commits_after == 0:
            found.append("the consumer committed nothing after the kill")
        return found

    def _leadership_problems(self) -> list[str]:
        found = []
        for tp, before in sorted(self.states_before.items()):
            after = self.states_after.get(tp)
            if after is None:
                found.append(f"{tp}: no state after the kill")
            elif before.leader == self.killed_broker:
                if after.leader in (NO_LEADER, self.killed_broker) or after.leader not in self.live_after:
                    found.append(f"{tp}: leader {after.leader} is not a live broker")
                if after.leader_epoch != before.leader_epoch + 1:
                    found.append(f"{tp}: leader epoch {before.leader_epoch} -> {after.leader_epoch}")
                if after.controller_epoch != self.controller_epoch_after:
                    found.append(f"{tp}: written by controller epoch {after.controller_epoch}")
            elif (after.leader, after.leader_epoch) != (before.leader, before.leader_epoch):
                found.append(f"{tp}: a live leader was replaced: {before} -> {after}")
        return found

    def _offset_problems(self) -> list[str]:
        found = []
        for tp, before in sorted(self.offsets_before.items()):
            after = self.offsets_after.get(tp)
            if after is None or after < before:
                found.append(f"{tp}: committed offset {before} before the kill, {after} after")
        for tp, history in sorted(self.offset_history.items()):
            if any(later < earlier for earlier, later in zip(history, history[1:], strict=False)):
                found.append(f"{tp}: the committed offsets went backwards: {history}")
            if history and history[-1] != self.offsets_after.get(tp):
                found.append(f"{tp}: history ends at {history[-1]}, fetched {self.offsets_after.get(tp)}")
        if self.offsets_before and not self.offset_history:
            found.append("no offset history was read")
        return found

    def report(self) -> str:
        """The recovery times (from the kill) and the checks, as the example prints them."""
        lines = [
            f"killed -9 at the same moment: broker {self.killed_broker} (the controller, epoch "
            f"{self.controller_epoch_before}) and Corral member {self.killed_corral} (the Raft leader)",
            "",
            f"  {'recovery step':<58} {'after the kill':>14}",
        ]
        for step, label in STEPS.items():
            took = self.timings.get(step)
            lines.append(f"  {label:<58} {'-' if took is None else f'{took:.2f} s':>14}")
        if self.first_ack_after_kill:
            firsts = ", ".join(f"{tp} {at:.2f} s" for tp, at in sorted(self.first_ack_after_kill.items()))
            lines.append(f"  (first ack per rerouted partition: {firsts})")
        moved = ", ".join(f"{tp} -> broker {self.states_after[tp].leader} (epoch {self.states_after[tp].leader_epoch})"
                          for tp in self.moved if tp in self.states_after)  # fmt: skip
        lines += [
            "",
            f"new Corral leader {self.new_corral_leader}; new controller broker {self.new_controller}, epoch "
            f"{self.controller_epoch_after}; moved: {moved}",
            f"records acknowledged: {self.acked_before} before the kill, {self.acked_after} after "
            f"({self.produce_retries} retries, {len(self.produce_failures)} failures); "
            f"lost: {len(self.lost)}; stored twice by a retry: {self.stored_twice}",
            f"offset commits: {self.commits_before} before the kill, {self.commits_after} after "
            f"({len(self.commit_errors)} failed and were made again: {self.commit_errors}); committed offsets lost "
            f"or rewound: {sum(1 for p in self.problems() if 'committed offset' in p)}",
            f"total {self.total_seconds:.1f} s; " + ("all checks passed" if not self.problems() else "PROBLEMS:"),
        ]
        lines += [f"  - {problem}" for problem in self.problems()]
        return "\n".join(lines)
