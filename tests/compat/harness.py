"""Send one op to two servers and explain a difference in a way a person can act on."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from typing import Any

import httpx

from tests.compat.normalize import normalize
from tests.compat.opgen import COMPACTION, DELETE, PUT, TXN, Op
from tests.support.servers import ServerProcess

Json = Any

BYTES_FIELDS = frozenset({"key", "range_end", "rangeEnd", "value"})
# Response headers that must match too (reference section 1.1); the rest (Date, Server, ...) may differ.
COMPARED_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
)
WRITE_PATHS = frozenset({PUT, DELETE, TXN, COMPACTION})


def restart_empty(*servers: ServerProcess, timeout: float = 20.0) -> None:
    """Kill the servers, delete their data directories and start them again, side by side: empty stores at
    revision 1."""
    for server in servers:
        server.kill()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    for server in servers:
        server.spawn()
    for server in servers:
        server.wait_healthy(timeout)


def remove(server: ServerProcess) -> None:
    server.kill()
    shutil.rmtree(server.data_dir, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A server's answer: HTTP status, the body parsed as JSON (or the raw text), and the raw text."""

    status: int
    body: Json
    text: str
    media_type: str  # Content-Type without parameters; "" when absent
    headers: tuple[str | None, ...]  # the COMPARED_HEADERS, in order

    @property
    def summary(self) -> str:
        media = f" ({self.media_type})" if self.media_type not in ("application/json", "") else ""
        return f"[{self.status}]{media} {clip(self.text)}"


def send(client: httpx.Client, op: Op) -> Exchange:
    response = client.request(
        op.method, op.path, content=op.content(), headers={"content-type": "application/json"}
    )
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = {"<not json>": response.text}
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    headers = tuple(response.headers.get(name) for name in COMPARED_HEADERS)
    return Exchange(response.status_code, body, response.text, media_type, headers)


def normalized(op: Op, exchange: Exchange) -> tuple[int, str, tuple[str | None, ...], Json]:
    """(status, media type, CORS headers, body) after `normalize`: what must be equal in etcd and Corral."""
    status, body = normalize(
        exchange.status, exchange.body, path=op.path, request=op.request(), loose_error=op.loose_error
    )
    return status, exchange.media_type, exchange.headers, body


def clip(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def decoded(value: Json) -> Json:
    """The request with its base64 byte fields shown as Python bytes literals, for reading."""
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            if name in BYTES_FIELDS and isinstance(item, str):
                try:
                    raw = base64.b64decode(item, validate=True)
                    item = repr(raw) if len(raw) <= 64 else f"{raw[:16]!r}... ({len(raw)} bytes)"
                except ValueError:
                    item = f"<bad base64 {item!r}>"
            out[name] = decoded(item)
        return out
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def describe(op: Op) -> str:
    text = clip(op.content().decode("utf-8", "replace"))
    request = op.request()
    lines = [f"{op.method} {op.path} {text}"]
    if isinstance(request, dict):
        lines.append(f"  decoded: {json.dumps(decoded(request), ensure_ascii=True)}")
    return "\n".join(lines)


def could_write(op: Op) -> bool:
    return op.path in WRITE_PATHS
