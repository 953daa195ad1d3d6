"""One mapping from errors to etcd's gateway error body and HTTP status."""

from __future__ import annotations

import orjson
from corral.consensus import log
from corral.consensus.log import BadTransferee, LogClosed, LogError, NotApplied, NotLeader
from corral.store.errors import EtcdError, GrpcCode

# grpc-gateway's code -> HTTP status table (upstream; FailedPrecondition is 400 there).
HTTP_STATUS: dict[int, int] = {
    GrpcCode.OK: 200,
    GrpcCode.CANCELED: 408,
    GrpcCode.UNKNOWN: 500,
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.DEADLINE_EXCEEDED: 504,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.ALREADY_EXISTS: 409,
    GrpcCode.PERMISSION_DENIED: 403,
    GrpcCode.RESOURCE_EXHAUSTED: 429,
    GrpcCode.FAILED_PRECONDITION: 400,
    GrpcCode.ABORTED: 409,
    GrpcCode.OUT_OF_RANGE: 400,
    GrpcCode.UNIMPLEMENTED: 501,
    GrpcCode.INTERNAL: 500,
    GrpcCode.UNAVAILABLE: 503,
    GrpcCode.DATA_LOSS: 500,
    GrpcCode.UNAUTHENTICATED: 401,
}


class Unavailable(EtcdError):
    code = GrpcCode.UNAVAILABLE
    message = "etcdserver: request timed out"


class MessageTooLarge(EtcdError):
    """The body is over the gRPC receive limit (max-request-bytes + 512 KiB)."""

    code = GrpcCode.RESOURCE_EXHAUSTED

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"grpc: received message larger than max ({size} vs. {limit})")


def error_response(error: EtcdError) -> tuple[int, bytes]:
    body = orjson.dumps({"error": error.message, "message": error.message, "code": int(error.code)})
    status = getattr(error, "http_status", None) or HTTP_STATUS.get(error.code, 500)
    return status, body


class ServerStopped(EtcdError):
    code = GrpcCode.UNAVAILABLE
    message = "etcdserver: server stopped"


class NotLeaderError(EtcdError):
    code = GrpcCode.FAILED_PRECONDITION
    message = "etcdserver: not leader"


class BadLeaderTransferee(EtcdError):
    code = GrpcCode.FAILED_PRECONDITION
    message = "etcdserver: bad leader transferee"


class NoLeaderError(EtcdError):
    code = GrpcCode.UNAVAILABLE
    message = "etcdserver: no leader"


class NotAppliedError(EtcdError):
    """A write the log proved will never be applied (a newer leader committed without it): retry it.

    etcd 3.4 says `etcdserver: leader changed` only when a leader change interrupts a linearizable read's
    ReadIndex round; it makes no statement about writes (their outcome after a leader change is a timeout).
    This answer is a promise about a write, so it has its own text; clients may retry the write on it.
    """

    code = GrpcCode.UNAVAILABLE
    message = "etcdserver: leader changed, request not applied"


# etcd's text for each refused membership change (etcdserver/api/v3rpc/rpctypes).
_MEMBERSHIP_ERRORS: dict[type[LogError], tuple[GrpcCode, str]] = {
    log.MemberNotFound: (GrpcCode.NOT_FOUND, "etcdserver: member not found"),
    log.MemberExists: (GrpcCode.FAILED_PRECONDITION, "etcdserver: member ID already exist"),
    log.PeerURLExists: (GrpcCode.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    log.NotLearner: (GrpcCode.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
    log.LearnerNotReady: (
        GrpcCode.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
    ),
    log.TooManyLearners: (GrpcCode.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster"),
    log.NotEnoughStartedMembers: (
        GrpcCode.FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members",
    ),
    log.MembershipUnsupported: (
        GrpcCode.FAILED_PRECONDITION,
        "corral: a single-node member runs without Raft; start members with --initial-cluster to change membership",
    ),
}


def from_log_error(error: LogError) -> EtcdError:
    """A log that cannot take writes looks to clients like an etcd that cannot serve them."""
    if isinstance(error, LogClosed):
        return ServerStopped()
    if isinstance(error, NotLeader):
        return NotLeaderError()
    if isinstance(error, NotApplied):
        return NotAppliedError()
    if isinstance(error, BadTransferee):
        return BadLeaderTransferee()
    if (known := _MEMBERSHIP_ERRORS.get(type(error))) is not None:
        code, message = known
        return EtcdError(message, code)
    return Unavailable(f"etcdserver: {error}")
