"""Log lines: `--log-format json` writes one JSON object per event with member, term and trace id."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
from corral.api.logs import JSONFormatter, MemberFields

from tests.support.servers import corral_process, running


def test_json_log_lines_name_the_member_and_term(tmp_path: Path) -> None:
    server = corral_process(tmp_path / "data", extra=["--log-format", "json"], name="logger-test")
    with running(server):
        pass
    lines = [orjson.loads(line) for line in server.log_path.read_bytes().splitlines() if line.strip()]
    assert lines, "no log lines"
    serving = next(line for line in lines if "serving clients" in line["msg"])
    assert serving["member"] == "logger-test" and serving["level"] == "info" and serving["ts"].endswith("Z")
    assert all({"ts", "level", "logger", "msg", "member", "term"} <= set(line) for line in lines)


def test_a_record_in_a_trace_carries_its_trace_id() -> None:
    fields = MemberFields("n1")
    fields.term, fields.trace_id = (lambda: 7), (lambda: "ab" * 16)
    record = logging.LogRecord("corral", logging.WARNING, __file__, 1, "leader is now %x", (255,), None)
    fields.filter(record)
    line = orjson.loads(JSONFormatter().format(record))
    assert line == {**line, "msg": "leader is now ff", "member": "n1", "term": 7, "trace_id": "ab" * 16}
    assert line["level"] == "warning"
