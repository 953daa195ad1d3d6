"""Runnable examples of Corral at work; not part of the installed package (run them from the repository root)."""
