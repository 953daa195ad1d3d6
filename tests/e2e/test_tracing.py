"""OpenTelemetry tracing across a three-member cluster, exported to a real OTLP/HTTP receiver.

The receiver runs in the test process: a small HTTP server on loopback that accepts `POST /v1/traces`
and decodes each body as an OTLP `ExportTraceServiceRequest`. The members are started with only the
standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_BSP_SCHEDULE_DELAY`). A put
sent to a follower with our own `traceparent` must come back as one trace: the follower's request span
and commit-wait span, and the leader's WAL write and apply of that entry as children of the follower's
commit-wait span (the context travelled to the leader inside the forwarded log entry).
"""

from __future__ import annotations

import base64
import gzip
import os
import secrets
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from corral.api.server import tracing_requested
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.support.servers import ServerProcess, cluster_leader, corral_cluster, corral_process, running

SERVICE = "corral-tracing-test"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


class OTLPReceiver:
    """An OTLP/HTTP (protobuf) trace receiver on 127.0.0.1 that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes=_attributes(span.attributes),
                            resource=resource,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    otlp = OTLPReceiver()
    otlp.start()
    try:
        yield otlp
    finally:
        otlp.stop()


@pytest.fixture
def traced_cluster(tmp_path: Path, receiver: OTLPReceiver) -> Iterator[list[ServerProcess]]:
    members = corral_cluster(tmp_path, 3)
    for member in members:
        member.env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": SERVICE,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        }
        member.spawn()
    try:
        for member in members:
            member.wait_healthy(20.0)
        yield members
    finally:
        for member in members:
            member.kill()


def _member_id(member: ServerProcess) -> str:
    response = httpx.post(member.url + "/v3/maintenance/status", json={}, timeout=5.0)
    return str(response.json()["header"]["member_id"])


def _wait_for(receiver: OTLPReceiver, trace_id: str, done: Any, timeout: float = 15.0) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    spans = receiver.trace(trace_id)
    while time.monotonic() < deadline and not done(spans):
        time.sleep(0.05)
        spans = receiver.trace(trace_id)
    return spans


def _one(spans: list[ReceivedSpan], name: str, member: str, parent: str | None = None) -> ReceivedSpan:
    found = [
        s for s in spans
        if s.name == name and s.resource.get("service.instance.id") == member
        and (parent is None or s.parent_span_id == parent)
    ]  # fmt: skip
    summary = [(s.name, s.resource.get("service.instance.id"), s.span_id, s.parent_span_id) for s in spans]
    assert len(found) == 1, f"want one {name} span of member {member} (parent {parent}), trace has {summary}"
    return found[0]


def _traced_post(
    member: ServerProcess, path: str, body: dict[str, object], tracestate: str | None = None
) -> tuple[httpx.Response, str, str]:
    """POST as a caller in a trace of its own: (the answer, the trace id, the caller's span id)."""
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{caller_span}-01", **({"tracestate": tracestate} if tracestate else {})}
    response = httpx.post(member.url + path, json=body, headers=headers, timeout=10.0)
    assert response.status_code == 200, response.text
    return response, trace_id, caller_span


def test_a_put_through_a_follower_is_one_trace_across_follower_and_leader(
    traced_cluster: list[ServerProcess], receiver: OTLPReceiver
) -> None:
    leader, leader_id = cluster_leader(traced_cluster)
    follower = next(m for m in traced_cluster if m is not leader)
    follower_id = _member_id(follower)
    put = {"key": base64.b64encode(b"traced").decode(), "value": base64.b64encode(b"v").decode()}
    response, trace_id, caller_span = _traced_post(follower, "/v3/kv/put", put, tracestate="corral=test")
    revision = int(response.json()["header"]["revision"])

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {(s.name, s.resource.get("service.instance.id")) for s in spans}
        wanted = {("POST /v3/kv/put", follower_id), ("corral.commit_wait", follower_id),
                  ("corral.wal.persist", leader_id), ("corral.apply", leader_id)}  # fmt: skip
        return wanted <= names

    spans = _wait_for(receiver, trace_id, complete)

    # The follower's request span continues our trace; its commit wait is its child.
    request = _one(spans, "POST /v3/kv/put", follower_id, parent=caller_span)
    assert request.kind == 2  # SPAN_KIND_SERVER
    port = int(follower.url.rsplit(":", 1)[1])
    assert request.attributes["http.request.method"] == "POST"
    assert request.attributes["url.path"] == "/v3/kv/put"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["server.address"] == "127.0.0.1"
    assert request.attributes["server.port"] == port
    assert request.attributes["corral.member_id"] == follower_id
    assert request.attributes["corral.revision"] == revision
    assert request.attributes["corral.raft.term"] >= 1
    wait = _one(spans, "corral.commit_wait", follower_id, parent=request.span_id)
    assert wait.attributes["corral.revision"] == revision

    # The leader wrote and applied the forwarded entry under the follower's commit-wait span.
    persist = _one(spans, "corral.wal.persist", leader_id, parent=wait.span_id)
    applied = _one(spans, "corral.apply", leader_id, parent=wait.span_id)
    assert persist.attributes["corral.member_id"] == leader_id
    assert applied.attributes["corral.member_id"] == leader_id
    assert persist.attributes["corral.raft.index"] == applied.attributes["corral.raft.index"] > 0
    assert persist.attributes["corral.raft.term"] == applied.attributes["corral.raft.term"] >= 1
    assert applied.attributes["corral.revision"] == revision

    # Every span of the trace says which member recorded it, and all belong to one service.
    assert {s.resource.get("service.name") for s in spans} == {SERVICE}
    assert all(s.attributes.get("corral.member_id") == s.resource.get("service.instance.id") for s in spans)
    assert leader_id != follower_id

    # The follower persisted and applied the same entry too, in the same trace.
    follower_apply = _one(spans, "corral.apply", follower_id, parent=wait.span_id)
    assert follower_apply.attributes["corral.raft.index"] == applied.attributes["corral.raft.index"]


def test_a_linearizable_read_records_its_read_index(
    traced_cluster: list[ServerProcess], receiver: OTLPReceiver
) -> None:
    leader, _ = cluster_leader(traced_cluster)
    follower = next(m for m in traced_cluster if m is not leader)
    follower_id = _member_id(follower)
    absent = {"key": base64.b64encode(b"absent").decode()}
    response, trace_id, caller_span = _traced_post(follower, "/v3/kv/range", absent)

    def complete(spans: list[ReceivedSpan]) -> bool:
        return {"POST /v3/kv/range", "corral.read_index"} <= {s.name for s in spans}

    spans = _wait_for(receiver, trace_id, complete)
    request = _one(spans, "POST /v3/kv/range", follower_id, parent=caller_span)
    _one(spans, "corral.read_index", follower_id, parent=request.span_id)
    assert request.attributes["corral.revision"] == int(response.json()["header"]["revision"])


def test_a_single_member_traces_its_wal_write_and_apply(tmp_path: Path, receiver: OTLPReceiver) -> None:
    server = corral_process(tmp_path / "data", peer_urls=False)
    server.env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint + "/v1/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    with running(server):
        member = _member_id(server)
        txn = {"success": [{"request_put": {"key": "YQ==", "value": "Yg=="}}]}
        response, trace_id, caller_span = _traced_post(server, "/v3/kv/txn", txn)

        def complete(spans: list[ReceivedSpan]) -> bool:
            return {"corral.wal.persist", "corral.apply"} <= {s.name for s in spans}

        spans = _wait_for(receiver, trace_id, complete)
    request = _one(spans, "POST /v3/kv/txn", member, parent=caller_span)
    wait = _one(spans, "corral.commit_wait", member, parent=request.span_id)
    persist = _one(spans, "corral.wal.persist", member, parent=wait.span_id)
    applied = _one(spans, "corral.apply", member, parent=wait.span_id)
    assert persist.attributes["corral.raft.index"] == applied.attributes["corral.raft.index"]
    assert applied.attributes["corral.revision"] == int(response.json()["header"]["revision"])
    if not os.environ.get("OTEL_SERVICE_NAME"):
        assert request.resource["service.name"] == "corral"  # the default when OTEL_SERVICE_NAME is not set


# -- off unless configured --------------------------------------------------------------------------


def test_tracing_is_requested_only_by_an_otlp_endpoint() -> None:
    assert not tracing_requested({})
    assert not tracing_requested({"OTEL_SERVICE_NAME": "corral", "OTEL_TRACES_SAMPLER": "always_on"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"})
    assert not tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_TRACES_EXPORTER": "none"})


def test_with_tracing_off_opentelemetry_is_not_even_imported(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from corral.api.app import create_app; "
        "from corral.api.server import CorralServer, ServerConfig; "
        f"server = CorralServer(ServerConfig(data_dir=Path({str(tmp_path)!r}))); create_app(server); "
        "assert server.tracing is None; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


_CLIENT_SCRIPT = """
import sys
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from corral.client import Client

provider = TracerProvider(resource=Resource.create({"service.name": "corral-client-test"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
with trace.get_tracer("test").start_as_current_span("app") as app:
    Client(sys.argv[1]).put("traced-by-client", "v")
print(format(app.get_span_context().trace_id, "032x"))
provider.shutdown()
"""


def test_a_client_call_is_the_root_of_the_trace_across_follower_and_leader(
    traced_cluster: list[ServerProcess], receiver: OTLPReceiver
) -> None:
    leader, leader_id = cluster_leader(traced_cluster)
    follower = next(m for m in traced_cluster if m is not leader)
    follower_id = _member_id(follower)
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT_SCRIPT, follower.url], env=env, capture_output=True, timeout=60, check=True
    )
    trace_id = done.stdout.decode().strip()

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {(s.name, s.resource.get("service.instance.id")) for s in spans}
        wanted = {("POST /v3/kv/put", follower_id), ("corral.commit_wait", follower_id),
                  ("corral.wal.persist", leader_id), ("corral.apply", leader_id)}  # fmt: skip
        return wanted <= names and any(
            s.resource.get("service.name") == "corral-client-test" and s.kind == 3 for s in spans
        )

    spans = _wait_for(receiver, trace_id, complete)
    (client_span,) = [s for s in spans if s.resource.get("service.name") == "corral-client-test" and s.kind == 3]
    assert client_span.name == "POST /v3/kv/put"
    assert client_span.attributes["url.full"] == follower.url + "/v3/kv/put"
    request = _one(spans, "POST /v3/kv/put", follower_id, parent=client_span.span_id)
    wait = _one(spans, "corral.commit_wait", follower_id, parent=request.span_id)
    _one(spans, "corral.wal.persist", leader_id, parent=wait.span_id)
    _one(spans, "corral.apply", leader_id, parent=wait.span_id)
