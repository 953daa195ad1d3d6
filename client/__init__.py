"""Corral client library: knows only the wire."""
