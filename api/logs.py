"""Log lines, one per event, as text or JSON (`--log-format`), each naming the member, its Raft term and,
inside a traced request, the trace id."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(member)s term=%(term)s%(trace)s]: %(message)s"


class MemberFields(logging.Filter):
    """Adds `member`, `term` and `trace` (" trace=<id>" or "") to every record; the server fills in how
    to read the term and the current trace id once it exists."""

    def __init__(self, member: str) -> None:
        super().__init__()
        self.member = member
        self.term: Callable[[], int] = lambda: 0
        self.trace_id: Callable[[], str] = lambda: ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.member = self.member
        try:
            record.term = self.term()
            trace_id = self.trace_id()
        except Exception:  # noqa: BLE001 - a log line must never fail for its decorations
            record.term, trace_id = 0, ""
        record.trace_id = trace_id
        record.trace = f" trace={trace_id}" if trace_id else ""
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC), level, logger, msg, member, term, trace_id, error."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, object] = {
            "ts": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "member": getattr(record, "member", ""),
            "term": getattr(record, "term", 0),
        }
        if trace_id := getattr(record, "trace_id", ""):
            line["trace_id"] = trace_id
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(log_format: str, level: str, member: str) -> MemberFields:
    """Route every logger (uvicorn's too) through one handler on stderr in the chosen format."""
    fields = MemberFields(member)
    handler = logging.StreamHandler()
    handler.addFilter(fields)
    handler.setFormatter(JSONFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    return fields
