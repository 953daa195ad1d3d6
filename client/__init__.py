"""Corral's Python client: KV, transactions, leases with automatic keep-alive, resumable watches.

Works against Corral and against any etcd v3 JSON gateway. `Client` blocks; `AsyncClient` is its asyncio twin.
"""

from corral.client import txn
from corral.client._async import AsyncClient, AsyncLease, AsyncWatch
from corral.client._endpoints import RetryPolicy
from corral.client._errors import (
    CompactedError,
    CorralError,
    FailedPrecondition,
    FutureRevisionError,
    InvalidArgument,
    LeaseLostError,
    LeaseNotFound,
    NotFound,
    OutOfRange,
    RequestTimeout,
    ResourceExhausted,
    ServerError,
    TransportError,
    Unavailable,
    WatchCanceled,
)
from corral.client._models import (
    DeleteResult,
    Event,
    EventType,
    Header,
    KeyValue,
    LeaseGrant,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
    WatchResponse,
)
from corral.client._sync import Client, Lease, Watch

__all__ = [
    "AsyncClient",
    "AsyncLease",
    "AsyncWatch",
    "Client",
    "CompactedError",
    "CorralError",
    "DeleteResult",
    "Event",
    "EventType",
    "FailedPrecondition",
    "FutureRevisionError",
    "Header",
    "InvalidArgument",
    "KeyValue",
    "Lease",
    "LeaseGrant",
    "LeaseInfo",
    "LeaseLostError",
    "LeaseNotFound",
    "Member",
    "NotFound",
    "OutOfRange",
    "PutResult",
    "RangeResult",
    "RequestTimeout",
    "ResourceExhausted",
    "RetryPolicy",
    "ServerError",
    "Status",
    "TransportError",
    "TxnResult",
    "Unavailable",
    "Watch",
    "WatchCanceled",
    "WatchResponse",
    "txn",
]
