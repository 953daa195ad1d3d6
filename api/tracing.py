"""OpenTelemetry tracing, configured only through the standard `OTEL_*` environment variables.

Tracing is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
`OTEL_SDK_DISABLED` is not true, nor `OTEL_TRACES_EXPORTER` none: `server.tracing_requested`); spans go out
over OTLP/HTTP protobuf through a BatchSpanProcessor, and the SDK reads the rest (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*`). When it is off,
`CorralServer.tracing` is None, this module is never imported (nor OpenTelemetry, ~0.3 s of imports), and
each traced stage costs one `is None` check.

The spans of one request, on the member that took it:

    POST /v3/kv/put                 SERVER, from the request's W3C traceparent/tracestate if it has one
      corral.commit_wait            propose -> applied here (writes)
        corral.wal.persist          WAL append + fdatasync of the Raft Ready that carried the entry
        corral.apply                the entry applied to the store
      corral.read_index             the read barrier of a linearizable read (Raft's ReadIndex)

`corral.wal.persist` and `corral.apply` are reported by the log through `consensus.trace_hooks`, on every
member that persists and applies the entry: the commit-wait span's context travels inside the log
entry, so when a follower forwards a proposal the leader's WAL and apply spans are children of the
follower's commit-wait span, in one trace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from corral import __version__
from corral.consensus.log import ReplicatedLog
from corral.consensus.trace_hooks import TracedEntry
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "corral"
SHUTDOWN_SECONDS = 5.0

# A trace context inside a log entry: format version 0, then W3C's binary trace context fields (trace id,
# span id, flags), then the tracestate header's text. A format this member does not know yields no span.
_CONTEXT_VERSION = 0
_CONTEXT_FIXED_BYTES = 1 + 16 + 8 + 1

UnaryCall = Callable[[Callable[[bytes], Awaitable[bytes]], Receive, Send], Awaitable[None]]


def encode_context(span_context: SpanContext) -> bytes:
    state = span_context.trace_state.to_header().encode() if span_context.trace_state else b""
    return (
        bytes((_CONTEXT_VERSION,))
        + span_context.trace_id.to_bytes(16, "big")
        + span_context.span_id.to_bytes(8, "big")
        + bytes((span_context.trace_flags,))
        + state
    )


def decode_context(data: bytes) -> SpanContext | None:
    if len(data) < _CONTEXT_FIXED_BYTES or data[0] != _CONTEXT_VERSION:
        return None
    state = data[_CONTEXT_FIXED_BYTES:]
    span_context = SpanContext(
        trace_id=int.from_bytes(data[1:17], "big"),
        span_id=int.from_bytes(data[17:25], "big"),
        is_remote=True,
        trace_flags=TraceFlags(data[25]),
        trace_state=TraceState.from_header([state.decode(errors="replace")]) if state else None,
    )
    return span_context if span_context.is_valid else None


class Tracing:
    """One member's tracer: request spans for the gateway, stage spans for the routes, hooks for the log."""

    def __init__(self, provider: TracerProvider, member_id: int, log: Callable[[], ReplicatedLog | None]) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("corral", __version__)
        self._member = str(member_id)  # uint64: a string, as in etcd's JSON headers (OTel ints are int64)
        self._log = log
        self.hooks = LogTraceHooks(self._tracer, self._member)

    @classmethod
    def from_env(cls, member_id: int, name: str, log: Callable[[], ReplicatedLog | None]) -> Tracing:
        attributes = {SERVICE_INSTANCE_ID: str(member_id), SERVICE_VERSION: __version__, "corral.member.name": name}
        resource = Resource.create(attributes)
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the exporter's endpoint, headers, timeout and
        # compression from OTEL_EXPORTER_OTLP_*, the batching from OTEL_BSP_*.
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        logger.info("tracing on: OTLP/HTTP to %s as service %s", getattr(exporter, "_endpoint", "?"),
                    resource.attributes.get(SERVICE_NAME))  # fmt: skip
        return cls(provider, member_id, log)

    def current_trace_id(self) -> str:
        """The trace id of the span in progress (for log lines), or "" outside one."""
        span_context = trace.get_current_span().get_span_context()
        return format(span_context.trace_id, "032x") if span_context.is_valid else ""

    def shutdown(self) -> None:
        """Flush what is queued and stop the exporter; gives up after SHUTDOWN_SECONDS (collector down)."""
        worker = threading.Thread(target=self._provider.shutdown, name="corral-trace-shutdown", daemon=True)
        worker.start()
        worker.join(SHUTDOWN_SECONDS)

    # -- the gateway -------------------------------------------------------------------------------

    async def serve_unary(
        self, unary: UnaryCall, handler: Callable[[bytes], Awaitable[bytes]], route: str, scope: Scope,
        receive: Receive, send: Send,
    ) -> None:  # fmt: skip
        """Serve one unary request inside a SERVER span continuing the caller's trace, if it sent one."""
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ())}
        parent = propagate.extract(carrier)
        attributes: dict[str, Any] = {
            "http.request.method": scope.get("method", "POST"),
            "url.path": scope.get("path", route),
            "url.scheme": scope.get("scheme", "http"),
            "http.route": route,
            "corral.member_id": self._member,
        }
        server = scope.get("server")
        if server:
            attributes["server.address"], attributes["server.port"] = server[0], server[1]
        client = scope.get("client")
        if client:
            attributes["client.address"], attributes["client.port"] = client[0], client[1]
        if user_agent := carrier.get("user-agent"):
            attributes["user_agent.original"] = user_agent
        span = self._tracer.start_span(f"POST {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes)
        if not span.is_recording():
            # Not sampled: nothing below it records or carries a context either, so skip making it current.
            await unary(handler, receive, send)
            return
        status = 0

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with trace.use_span(span, end_on_exit=True):
            await unary(handler, receive, send_and_see)
            span.set_attribute("http.response.status_code", status)
            log = self._log()
            if log is not None:
                span.set_attribute("corral.raft.term", log.term)
            if status >= 500:  # a server span is an error only for 5xx (HTTP semantic conventions)
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))

    # -- the routes --------------------------------------------------------------------------------

    async def commit_wait(self, log: ReplicatedLog, data: bytes, decoded: object) -> object:
        """`log.propose` in a span; the log carries that span's context with the entry."""
        if not trace.get_current_span().is_recording():  # an unsampled request: no child spans to record
            return await log.propose(data, decoded)
        with self._tracer.start_as_current_span("corral.commit_wait", attributes={"corral.member_id": self._member}):
            result = await log.propose(data, decoded)
            revision = getattr(result, "revision", None)
            if isinstance(revision, int):
                trace.get_current_span().set_attribute("corral.revision", revision)
            return result

    async def read_index(self, log: ReplicatedLog) -> None:
        """`log.read_barrier` (ReadIndex, then waiting for this member to apply that far) in a span."""
        if not trace.get_current_span().is_recording():
            await log.read_barrier()
            return
        with self._tracer.start_as_current_span("corral.read_index", attributes={"corral.member_id": self._member}):
            await log.read_barrier()

    def annotate(self, revision: int, term: int) -> None:
        """Put the revision and term a response reports on the request's span."""
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("corral.revision", revision)
            span.set_attribute("corral.raft.term", term)


class LogTraceHooks:
    """`consensus.trace_hooks.TraceHooks` over OpenTelemetry: the log's stages become spans after the fact,
    with the times the log measured, as children of the context carried with the entry."""

    def __init__(self, tracer: trace.Tracer, member: str) -> None:
        self._tracer = tracer
        self._member = member

    def current_context(self) -> bytes | None:
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid or not span_context.trace_flags.sampled:
            return None  # nobody would record the stages of an unsampled trace
        return encode_context(span_context)

    def persisted(self, entries: Sequence[TracedEntry], start_ns: int, end_ns: int, batch: int, synced: bool) -> None:
        extra = {"corral.wal.batch_entries": batch, "corral.wal.synced": synced}
        for entry in entries:
            self._record("corral.wal.persist", entry, start_ns, end_ns, extra)

    def applied(self, entry: TracedEntry, start_ns: int, end_ns: int, result: object) -> None:
        extra: dict[str, Any] = {}
        revision = getattr(result, "revision", None)
        if isinstance(revision, int):
            extra["corral.revision"] = revision
        if isinstance(result, Exception):  # the store answers some requests with an error (a failed compare...)
            extra["error.type"] = type(result).__name__
        self._record("corral.apply", entry, start_ns, end_ns, extra)

    def _record(self, name: str, entry: TracedEntry, start_ns: int, end_ns: int, extra: dict[str, Any]) -> None:
        try:
            parent = decode_context(entry.context)
            if parent is None:
                return  # a context format this member does not know
            attributes = {
                "corral.member_id": self._member, "corral.raft.index": entry.index, "corral.raft.term": entry.term,
                **extra,
            }  # fmt: skip
            context = trace.set_span_in_context(NonRecordingSpan(parent), otel_context.Context())
            span = self._tracer.start_span(name, context=context, attributes=attributes, start_time=start_ns)
            span.end(end_time=end_ns)
        except Exception:  # noqa: BLE001 - tracing must never stop the log that calls it
            logger.exception("recording span %s failed", name)
