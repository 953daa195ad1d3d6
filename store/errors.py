"""Errors with etcd's gRPC code and message text.

Clients match on the exact text, so every message here is etcd's, word for word. The HTTP layer maps
each error to etcd's JSON error body and HTTP status once (see `corral.api.errors`).
"""

from __future__ import annotations

from enum import IntEnum


class GrpcCode(IntEnum):
    OK = 0
    CANCELED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class EtcdError(Exception):
    """Base of every error that reaches a client: a gRPC code and etcd's message."""

    code: GrpcCode = GrpcCode.UNKNOWN
    message: str = "etcdserver: unknown error"

    def __init__(self, message: str | None = None, code: GrpcCode | None = None) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        super().__init__(self.message)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EtcdError) and (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class KeyNotProvided(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: key is not provided"


class FutureRevision(EtcdError):
    code = GrpcCode.OUT_OF_RANGE
    message = "etcdserver: mvcc: required revision is a future revision"


class Compacted(EtcdError):
    code = GrpcCode.OUT_OF_RANGE
    message = "etcdserver: mvcc: required revision has been compacted"


class LeaseNotFound(EtcdError):
    code = GrpcCode.NOT_FOUND
    message = "etcdserver: requested lease not found"


class LeaseExists(EtcdError):
    code = GrpcCode.FAILED_PRECONDITION
    message = "etcdserver: lease already exists"


class LeaseTTLTooLarge(EtcdError):
    code = GrpcCode.OUT_OF_RANGE
    message = "etcdserver: too large lease TTL"


class KeyNotFound(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: key not found"


class ValueProvided(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: value is provided"


class LeaseProvided(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: lease is provided"


class TooManyOps(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: too many operations in txn request"


class DuplicateKey(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: duplicate key given in txn request"


class RequestTooLarge(EtcdError):
    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: request is too large"
