"""Ordering commands: the replicated log, its WAL and snapshot files."""
