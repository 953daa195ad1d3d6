"""The OpenAPI description (`openapi.yaml`) against the routes the server really builds.

The routes come from the application object `create_app` returns: its unary and streaming `POST /v3/...`
routes and the Starlette fallback's plain routes (`/health`, `/version`, `/metrics`, `/livez`, `/readyz`,
`/openapi.yaml`, `GET /v3/watch/sse`). A route served but not described fails a test, and so does a path
described but not served. Two exceptions, each checked: `/corral/faults/partition` exists only with
`--experimental-fault-injection` and is left out of the document on purpose; every `/v3/...` route of
etcd's gateway is also served as `/v3beta/...`, which the document says in its description instead of
repeating each path (Corral's own `/v3/watch/sse` is not, and the description says that too).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from corral.api.app import OPENAPI_SPEC, create_app
from corral.api.gateway import Gateway
from corral.api.server import CorralServer, ServerConfig
from openapi_spec_validator import validate
from starlette.routing import Route

from tests.support.servers import REPO_ROOT

ROOT_SPEC = REPO_ROOT / "openapi.yaml"
TEST_ONLY_ROUTES = {"/corral/faults/partition": "--experimental-fault-injection"}
CATCH_ALL = "/{path:path}"
# Corral's own routes under /v3/, served beside etcd's gateway and so without its /v3beta/ rewrite.
NO_V3BETA_ALIAS = {"/v3/watch/sse"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document = yaml.safe_load(ROOT_SPEC.read_text())
    assert isinstance(document, dict)
    return document


def build_app(data_dir: Path, fault_injection: bool = False) -> Gateway:
    # A member that is built but not started: building the routes touches neither disk nor network.
    return create_app(CorralServer(ServerConfig(data_dir=data_dir, fault_injection=fault_injection)))


def served_routes(app: Gateway) -> dict[str, str]:
    """Path -> method of every route the app serves. The gateway keeps its unary and stream routes and
    its fallback app privately; a test reaching in is cheaper than an API used by nothing else."""
    unary = {path: "post" for path in app._routes}
    streams = {path: "post" for path in app._streams}
    fallback = app._fallback.routes  # type: ignore[attr-defined]
    plain = {route.path: "get" for route in fallback if isinstance(route, Route) and route.path != CATCH_ALL}
    assert not unary.keys() & streams.keys() and not (unary.keys() | streams.keys()) & plain.keys()
    return {**unary, **streams, **plain}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    return build_app(tmp_path_factory.mktemp("routes") / "data")


def request(app: Gateway, method: str, path: str) -> httpx.Response:
    """One request straight into the ASGI app (only routes that need no running log)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:2379") as client:
            return await client.request(method, path)

    return asyncio.run(send())


def test_the_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.1.")


def test_the_root_spec_is_the_one_the_package_ships() -> None:
    assert ROOT_SPEC.resolve() == OPENAPI_SPEC.resolve()


def test_every_served_route_is_described_and_every_described_path_is_served(app: Gateway, spec: dict[str, Any]) -> None:
    served = served_routes(app)
    described = set(spec["paths"])
    assert sorted(served.keys() - described) == [], "served but missing from openapi.yaml"
    assert sorted(described - served.keys()) == [], "described in openapi.yaml but not served"


def test_each_path_is_described_with_the_one_method_it_serves(app: Gateway, spec: dict[str, Any]) -> None:
    served = served_routes(app)
    for path, item in spec["paths"].items():
        methods = {key for key in item if key in {"get", "put", "post", "delete", "options", "head", "patch"}}
        assert methods == {served.get(path, "?")}, path


def test_test_only_routes_are_served_only_on_request_and_never_described(tmp_path: Path, spec: dict[str, Any]) -> None:
    served = served_routes(build_app(tmp_path / "data", fault_injection=True))
    assert served.keys() - spec["paths"].keys() == TEST_ONLY_ROUTES.keys()
    description = spec["info"]["description"]
    for path, flag in TEST_ONLY_ROUTES.items():
        assert path in description and flag in description


def test_v3beta_aliases_are_served_for_every_v3_path_and_described_once(app: Gateway, spec: dict[str, Any]) -> None:
    assert not [path for path in spec["paths"] if path.startswith("/v3beta/")]
    assert "/v3beta/" in spec["info"]["description"]
    # GET never reaches a unary handler: a path the gateway knows answers 405, an unknown one 404.
    for path in spec["paths"]:
        if path.startswith("/v3/"):
            alias = "/v3beta/" + path.removeprefix("/v3/")
            expected = 404 if path in NO_V3BETA_ALIAS else 405
            assert request(app, "GET", alias).status_code == expected, alias
    assert request(app, "GET", "/v3beta/kv/no-such-route").status_code == 404
    for path in NO_V3BETA_ALIAS:
        assert "get" in spec["paths"][path]
        assert f"`GET {path}`" in spec["info"]["description"], f"the description must name {path} as an exception"


def test_the_spec_is_served_as_yaml(app: Gateway) -> None:
    response = request(app, "GET", "/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/yaml"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content == OPENAPI_SPEC.read_bytes()
    assert request(app, "HEAD", "/openapi.yaml").status_code == 200
    assert request(app, "POST", "/openapi.yaml").status_code == 405
