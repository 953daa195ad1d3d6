"""The HTTP/JSON edge: etcd v3 gateway-compatible routes over the replicated store."""
