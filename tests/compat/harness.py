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
WRITE_PATHS = frozenset({PUT, DELETE, TXN, COMPACTION})


def restart_empty(server: ServerProcess) -> None:
    """Kill the server, delete its data directory and start it again: an empty store at revision 1."""
    server.kill()
    shutil.rmtree(server.data_dir, ignore_errors=True)
    server.start()


def remove(server: ServerProcess) -> None:
    server.kill()
    shutil.rmtree(server.data_dir, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A server's answer: HTTP status, the body parsed as JSON (or the raw text), and the raw text."""

    status: int
    body: Json
    text: str

    @property
    def summary(self) -> str:
        return f"[{self.status}] {self.text}"


def send(client: httpx.Client, op: Op) -> Exchange:
    response = client.post(op.path, content=op.content(), headers={"content-type": "application/json"})
    try:
        body = response.json()
    except ValueError:
        body = {"<not json>": response.text}
    return Exchange(response.status_code, body, response.text)


def normalized(op: Op, exchange: Exchange) -> tuple[int, Json]:
    return normalize(exchange.status, exchange.body, path=op.path, request=op.request(), loose_error=op.loose_error)


def decoded(value: Json) -> Json:
    """The request with its base64 byte fields shown as Python bytes literals, for reading."""
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            if name in BYTES_FIELDS and isinstance(item, str):
                try:
                    item = repr(base64.b64decode(item, validate=True))
                except ValueError:
                    item = f"<bad base64 {item!r}>"
            out[name] = decoded(item)
        return out
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def describe(op: Op) -> str:
    text = op.content().decode("utf-8", "replace")
    request = op.request()
    lines = [f"POST {op.path} {text}"]
    if isinstance(request, dict):
        lines.append(f"  decoded: {json.dumps(decoded(request), ensure_ascii=True)}")
    return "\n".join(lines)


def could_write(op: Op) -> bool:
    return op.path in WRITE_PATHS
