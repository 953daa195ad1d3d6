"""The MVCC state machine: revisioned keys, txns, compaction; no Raft, no HTTP."""
