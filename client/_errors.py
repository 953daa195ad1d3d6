"""The client's exceptions.

    CorralError
    ├── TransportError            no endpoint answered (connection refused, reset, timed out)
    │   └── RequestTimeout        the deadline for one call passed
    ├── ServerError               the server answered with etcd's error JSON (`code`, `message`, `status`)
    │   ├── InvalidArgument       code 3  (empty key, bad txn, value/lease provided ...)
    │   ├── NotFound              code 5  (lease or member not found)
    │   │   └── LeaseNotFound
    │   ├── FailedPrecondition    code 9  (lease already exists, cluster reconfiguration refused ...)
    │   ├── OutOfRange            code 11
    │   │   ├── CompactedError    the revision asked for has been compacted (`compact_revision` when known)
    │   │   └── FutureRevisionError
    │   ├── ResourceExhausted     code 8  (request too large, too many requests, no space)
    │   └── Unavailable           code 14 (no leader, leader changed, timeouts inside the cluster)
    ├── LeaseLostError            a kept-alive lease expired or was revoked
    └── WatchCanceled             the server cancelled a watch (`reason`)

Error codes are gRPC's, as etcd's JSON gateway reports them; the message is etcd's text, unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CompactedError",
    "CorralError",
    "FailedPrecondition",
    "FutureRevisionError",
    "InvalidArgument",
    "LeaseLostError",
    "LeaseNotFound",
    "NotFound",
    "OutOfRange",
    "RequestTimeout",
    "ResourceExhausted",
    "ServerError",
    "TransportError",
    "Unavailable",
    "WatchCanceled",
    "server_error",
]

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE_REVISION = "etcdserver: mvcc: required revision is a future revision"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"


class CorralError(Exception):
    """Base of every error the client raises."""


class TransportError(CorralError):
    """No endpoint could be reached, or the connection broke before an answer came."""


class RequestTimeout(TransportError):
    """A call did not finish within its timeout."""


class ServerError(CorralError):
    """The server refused the request; `code` is the gRPC code, `message` etcd's text."""

    def __init__(self, message: str, code: int, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class InvalidArgument(ServerError):
    """gRPC code 3."""


class NotFound(ServerError):
    """gRPC code 5."""


class LeaseNotFound(NotFound):
    """The lease does not exist (never granted, revoked or expired)."""


class FailedPrecondition(ServerError):
    """gRPC code 9."""


class OutOfRange(ServerError):
    """gRPC code 11."""


class CompactedError(OutOfRange):
    """The revision asked for is older than the store's compaction point.

    `compact_revision` is the oldest revision still readable when the server said so (watches do), else 0.
    """

    def __init__(self, message: str = COMPACTED, code: int = 11, status: int = 400, compact_revision: int = 0) -> None:
        super().__init__(message, code, status)
        self.compact_revision = compact_revision


class FutureRevisionError(OutOfRange):
    """The revision asked for is newer than the store's."""


class ResourceExhausted(ServerError):
    """gRPC code 8."""


class Unavailable(ServerError):
    """gRPC code 14: the member cannot serve the request now (no leader, stopping, ...)."""


class LeaseLostError(CorralError):
    """A lease this client kept alive is gone: every key attached to it has been deleted."""

    def __init__(self, lease_id: int, reason: str) -> None:
        super().__init__(f"lease {lease_id:x} lost: {reason}")
        self.lease_id = lease_id
        self.reason = reason


class WatchCanceled(CorralError):
    """The server cancelled a watch for a reason other than compaction."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason or "watch canceled by the server")
        self.reason = reason


_BY_CODE: dict[int, type[ServerError]] = {
    3: InvalidArgument,
    5: NotFound,
    8: ResourceExhausted,
    9: FailedPrecondition,
    11: OutOfRange,
    14: Unavailable,
}
_BY_MESSAGE: dict[str, type[ServerError]] = {
    COMPACTED: CompactedError,
    FUTURE_REVISION: FutureRevisionError,
    LEASE_NOT_FOUND: LeaseNotFound,
}


def server_error(body: Any, status: int) -> ServerError:
    """The exception for an error body (unary `{"error","code","message"}` or a stream's `{"error":{...}}`)."""
    message, code = "", 2
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # a stream's final chunk
            message, code = str(error.get("message", "")), int(error.get("grpc_code", 2))
        else:
            message, code = str(body.get("message", error or "")), int(body.get("code", 2))
    if not message:
        message = f"HTTP {status}"
    cls = _BY_MESSAGE.get(message) or _BY_CODE.get(code, ServerError)
    return cls(message, code, status)
