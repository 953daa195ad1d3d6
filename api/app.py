"""Builds the ASGI application for one member: etcd's routes over a `CorralServer`."""

from __future__ import annotations

from pathlib import Path

from corral.watch.hub import WatchHub
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .cluster_routes import ClusterRoutes
from .concurrency_routes import ConcurrencyRoutes
from .fault_routes import FaultRoutes
from .gateway import CORS_HEADERS, Gateway, UnaryHandler
from .kv_routes import KVRoutes
from .lease_routes import LeaseKeeper, LeaseRoutes
from .maintenance_routes import MaintenanceRoutes
from .metrics import Metrics
from .server import GRPC_OVERHEAD_BYTES, CorralServer
from .watch_routes import WatchEvents, WatchRoutes

_CORS = {name.decode(): value.decode() for name, value in CORS_HEADERS}

# Bodies are JSON with base64 payloads, a third larger than the proto messages etcd limits, so the
# raw body cap sits well above the gRPC limit; the exact limits are checked on the decoded request.
BODY_SIZE_FACTOR = 3

# The API's OpenAPI description, shipped inside the package (the repo root's openapi.yaml links here).
OPENAPI_SPEC = Path(__file__).with_name("openapi.yaml")


def create_app(server: CorralServer) -> Gateway:
    lease_keeper = LeaseKeeper(server)
    server.add_service(lease_keeper)
    hub = WatchHub(server.state.store)
    server.state.restore_listeners.append(hub.attach)
    leases = LeaseRoutes(server, lease_keeper)
    maintenance = MaintenanceRoutes(server)
    streams = {
        "/v3/watch": WatchRoutes(server, hub, server.config.watch_progress_notify_interval),
        "/v3/lease/keepalive": leases.keepalive,
        "/v3/maintenance/snapshot": maintenance.snapshot,
        **ConcurrencyRoutes(server, hub).streams(),
    }
    routes: dict[str, UnaryHandler] = {
        **KVRoutes(server).routes(),
        **maintenance.routes(),
        **ClusterRoutes(server).routes(),
        **leases.routes(),
        **FaultRoutes(server).routes(),
    }

    def get_only(request: Request) -> Response | None:
        if request.method in ("GET", "HEAD"):
            return None
        if request.method == "OPTIONS":
            return Response(b"", headers=_CORS)
        return Response(b"Method Not Allowed\n", 405, headers={**_CORS, "allow": "GET"},
                        media_type="text/plain")  # fmt: skip

    async def health(request: Request) -> Response:
        # etcd writes this JSON without a content type, so Go labels it text/plain; no leader is a 503
        if (refused := get_only(request)) is not None:
            return refused
        if server.log.status().leader_id:
            return Response(b'{"health":"true"}', headers=_CORS, media_type="text/plain")
        return Response(b'{"health":"false"}', 503, headers=_CORS, media_type="text/plain")

    metrics = Metrics(server, hub)

    async def metrics_text(request: Request) -> Response:
        return get_only(request) or Response(metrics.render(), headers=_CORS, media_type=metrics.content_type)

    async def livez(request: Request) -> Response:
        # alive unless the log has failed for good (storage errors): etcd's /livez
        if (refused := get_only(request)) is not None:
            return refused
        failed = server.log.failed
        return Response(b"ok\n" if not failed else b"failed\n", 503 if failed else 200, headers=_CORS,
                        media_type="text/plain")  # fmt: skip

    async def readyz(request: Request) -> Response:
        # ready to serve requests: a leader is known (etcd's /readyz)
        if (refused := get_only(request)) is not None:
            return refused
        ready = bool(server.log.status().leader_id) and not server.log.failed
        return Response(b"ok\n" if ready else b"not ready\n", 200 if ready else 503, headers=_CORS,
                        media_type="text/plain")  # fmt: skip

    async def version(request: Request) -> Response:
        return get_only(request) or JSONResponse(server.version(), headers=_CORS)

    spec = OPENAPI_SPEC.read_bytes()

    async def openapi(request: Request) -> Response:
        return get_only(request) or Response(spec, headers=_CORS, media_type="application/yaml")

    async def other(request: Request) -> Response:
        # etcd's gateway: OPTIONS is always 200; a known path with the wrong method is 405; else 404.
        if request.method == "OPTIONS":
            return Response(b"", headers=_CORS)
        path = request.url.path.replace("/v3beta/", "/v3/", 1)
        if path in routes or path in streams:
            return Response(b"Method Not Allowed\n", 405, headers=_CORS, media_type="text/plain")
        if path.startswith("/v3/"):
            return Response(b"Not Found\n", 404, headers=_CORS, media_type="text/plain")
        # outside the gateway's prefix (e.g. /v3alpha/) it is Go's own mux that answers
        return Response(b"404 page not found\n", 404, headers=_CORS, media_type="text/plain")

    every_method = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    fallback = Starlette(
        routes=[
            Route("/health", health, methods=every_method),
            Route("/version", version, methods=every_method),
            Route("/metrics", metrics_text, methods=every_method),
            Route("/livez", livez, methods=every_method),
            Route("/readyz", readyz, methods=every_method),
            Route("/openapi.yaml", openapi, methods=every_method),
            Route("/v3/watch/sse", WatchEvents(server, hub).endpoint, methods=["GET"]),
            Route("/{path:path}", other, methods=every_method),
        ]
    )
    receive_limit = server.config.max_request_bytes + GRPC_OVERHEAD_BYTES
    return Gateway(routes, fallback, BODY_SIZE_FACTOR * receive_limit, receive_limit, streams, server.tracing)
