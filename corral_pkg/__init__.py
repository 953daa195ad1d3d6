"""Corral: a coordination service with etcd v3's HTTP/JSON API."""

__version__ = "0.1.0"
