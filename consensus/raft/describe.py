"""Stable one-line text renderings of entries, messages and Ready batches, for traces and logs.

The format is part of golden test traces: change it only together with those traces.
Example: `1->2 APP term=1 log=1/11 commit=11 entries=[1/12 "put"]`.
"""

from __future__ import annotations

from collections.abc import Iterable

from corral.consensus.raft.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Snapshot,
    SoftState,
)

MT = MessageType


def _data(data: bytes, limit: int = 32) -> str:
    text = data[:limit].decode("utf-8", "backslashreplace").replace('"', '\\"')
    return f'"{text}"' + ("..." if len(data) > limit else "")


def describe_entry(e: Entry) -> str:
    head = f"{e.term}/{e.index}"
    if e.type is EntryType.CONF_CHANGE:
        try:
            cc = ConfChange.decode(e.data)
        except ValueError:
            return f"{head} conf-change <undecodable>"
        return f"{head} conf-change {cc.type.name.lower()} {cc.node_id}"
    return f"{head} {_data(e.data)}" if e.data else head


def describe_entries(entries: Iterable[Entry]) -> str:
    return "[" + ", ".join(describe_entry(e) for e in entries) + "]"


def describe_conf_state(cs: ConfState) -> str:
    text = "voters=(" + " ".join(map(str, cs.voters)) + ")"
    if cs.learners:
        text += " learners=(" + " ".join(map(str, cs.learners)) + ")"
    return text


def describe_snapshot(s: Snapshot) -> str:
    return f"snapshot {s.meta.term}/{s.meta.index} {describe_conf_state(s.meta.conf_state)}"


def describe_hard_state(hs: HardState) -> str:
    return f"HardState term={hs.term} vote={hs.vote} commit={hs.commit}"


def describe_soft_state(ss: SoftState) -> str:
    return f"SoftState lead={ss.lead} role={ss.role.value}"


def describe_message(m: Message) -> str:
    parts = [f"{m.frm}->{m.to} {m.type.name} term={m.term}"]
    if m.type in (MT.APP, MT.VOTE, MT.PRE_VOTE):
        parts.append(f"log={m.log_term}/{m.index}")
    elif m.index:
        parts.append(f"index={m.index}")
    if m.commit:
        parts.append(f"commit={m.commit}")
    if m.reject:
        parts.append(f"rejected hint={m.log_term}/{m.reject_hint}" if m.type is MT.APP_RESP else "rejected")
    if m.entries:
        parts.append("entries=" + describe_entries(m.entries))
    if m.snapshot is not None:
        parts.append(describe_snapshot(m.snapshot))
    if m.context:
        parts.append(f"context={_data(m.context)}")
    return " ".join(parts)


def describe_ready(rd: Ready) -> list[str]:
    """One line per item of the Ready, in processing order; empty for an empty Ready."""
    lines: list[str] = []
    if rd.soft_state is not None:
        lines.append(describe_soft_state(rd.soft_state))
    if rd.hard_state is not None:
        lines.append(describe_hard_state(rd.hard_state))
    if rd.snapshot is not None:
        lines.append("Snapshot " + describe_snapshot(rd.snapshot))
    if rd.entries:
        lines.append("Entries " + describe_entries(rd.entries))
    if rd.committed_entries:
        lines.append("Committed " + describe_entries(rd.committed_entries))
    lines.extend("Message " + describe_message(m) for m in rd.messages)
    lines.extend(f"ReadState index={rs.index} context={_data(rs.context)}" for rs in rd.read_states)
    if lines and rd.must_sync:
        lines.append("MustSync")
    return lines
