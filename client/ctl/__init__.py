"""corralctl: an etcdctl-style command line for Corral and etcd."""

from corral.client.ctl.app import main

__all__ = ["main"]
