"""Schemathesis against a live single-member Corral: every answer must match `openapi.yaml`.

Each operation in the document is fuzzed with bodies generated from its request schema (valid ones and,
in negative mode, ones that break it) and every answer is checked: no 5xx, a status the document lists
for the operation, its content type, its body against the response schema, and its declared headers
(CORS). A stateful run then follows the document's links (put -> range / txn / deleterange / compaction
of the key just written, range -> range at the answer's revision, an election's leader -> proclaim /
resign as that leader), so reads and compares hit keys that exist and revisions that are real.

Runs are reproducible: a fixed seed, derandomized generation, no example database, and a bounded number
of examples per operation. `CORRAL_SCHEMATHESIS_EXAMPLES=N` runs more, `CORRAL_SCHEMATHESIS_SEED=N`
another seed.

Every operation is fuzzed, including the ones that change membership or leadership: on a single member
they cannot disturb it (it refuses every membership change and is the only leadership target), so
their error answers are part of the contract too. The exceptions are the operations that may never
answer, and the snapshot stream, whose answer is several JSON values (NOT_FUZZED below);
`test_unfuzzed_operations.py` checks those in bounded exchanges instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import yaml
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.servers import REPO_ROOT, ServerProcess, corral_process, running

SPEC = REPO_ROOT / "openapi.yaml"
SEED = int(os.environ.get("CORRAL_SCHEMATHESIS_SEED", "20251125"))
MAX_EXAMPLES = int(os.environ.get("CORRAL_SCHEMATHESIS_EXAMPLES", "75"))
STATEFUL_SCENARIOS = max(10, MAX_EXAMPLES // 2)
STATEFUL_STEPS = 10
# Streams whose request body is a sequence of objects: an empty body is an empty stream (200, no lines).
EMPTY_STREAM_PATHS = {"/v3/lease/keepalive"}
# Left out of the fuzzing, because their answers may never end, or never begin, or are several values:
# - the streams that stay open until the client disconnects (a watch, its SSE form, an election's
#   observe): schemathesis reads every response to its end, so one example would hang the run;
# - the snapshot stream, which ends but always answers two lines or more (the chunks, then their
#   digest), and schemathesis checks a response as one JSON value;
# - the calls that wait for the caller's turn (campaign, lock): the fuzzer's candidates share names,
#   and each one it makes holds a 60-second lease nobody keeps alive, so a later call on the same name
#   would wait up to a minute behind it.
# A short client timeout is no way out: schemathesis reports a timed-out call as a failure, every
# waiting example would cost the whole timeout, and a stream's answer would be cut at an arbitrary
# point. test_unfuzzed_operations.py checks each of these against the document in bounded exchanges
# (every wait there has a deadline). The election and lock calls that never wait (proclaim, leader,
# resign, unlock) are fuzzed like the rest.
NOT_FUZZED = {
    "Watch": "stream, open until the client disconnects",
    "WatchEvents": "Server-Sent Events, open until the client disconnects",
    "Observe": "stream, open until the client disconnects",
    "Snapshot": "stream of two lines or more (the chunks, then their digest)",
    "Campaign": "waits until the caller leads",
    "Lock": "waits until the caller holds the lock",
}


def response_schema_conformance_or_empty_stream(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """schemathesis's response_schema_conformance, except for the empty answer a stream gives an empty
    request body, which no JSON Schema can describe (the document says so in the operation's text)."""
    sent = response.request.body
    empty_request = not sent or (isinstance(sent, (bytes, str)) and not sent.strip())
    if case.operation.path in EMPTY_STREAM_PATHS and response.status_code == 200 and empty_request:
        assert response.content == b"", f"an empty stream was expected, got {response.content!r}"
        return None
    return response_schema_conformance(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance_or_empty_stream,
    response_headers_conformance,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
    }
)
document = schemathesis.openapi.from_path(SPEC, config=CONFIG)
schema = document.exclude(operation_id=sorted(NOT_FUZZED))


@pytest.fixture(scope="module")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One fresh member for the whole module: the fuzzing writes, deletes and compacts freely."""
    with running(corral_process(tmp_path_factory.mktemp("contract") / "data")) as server:
        yield server


def test_the_served_spec_is_the_file_and_loads(corral: ServerProcess) -> None:
    served = schemathesis.openapi.from_url(corral.url + "/openapi.yaml", config=CONFIG)
    assert served.raw_schema == yaml.safe_load(Path(SPEC).read_text())


def operation_ids(source: Any) -> set[str]:
    ids = set()
    for result in source.get_all_operations():
        assert isinstance(result, Ok), result.err()
        ids.add(result.ok().definition.raw["operationId"])
    return ids


def test_only_the_operations_that_may_never_answer_are_left_out() -> None:
    everything, fuzzed = operation_ids(document), operation_ids(schema)
    assert NOT_FUZZED.keys() <= everything, "NOT_FUZZED names an operation the document does not have"
    assert everything - fuzzed == NOT_FUZZED.keys()


@schema.parametrize()
def test_operation_conforms(case: schemathesis.Case, corral: ServerProcess) -> None:
    case.call_and_validate(base_url=corral.url, checks=CHECKS)


def test_linked_operations_conform(corral: ServerProcess) -> None:
    """Scenarios of up to STATEFUL_STEPS calls along the document's links (e.g. a put, then a range or a
    compare-and-swap txn on its key at its revision), each answer checked as above."""
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        rule_order_seed = SEED  # which operation starts a scenario; Hypothesis itself is derandomized

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": corral.url}

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
        )
    )


def test_the_member_is_undisturbed(corral: ServerProcess) -> None:
    """Runs last: the fuzzing above sent membership and leadership changes too, and a single member
    must have refused them all (it is still the one healthy member of its cluster)."""
    with httpx.Client(base_url=corral.url, timeout=10.0) as client:
        assert client.get("/health").status_code == 200
        members = client.post("/v3/cluster/member/list", json={}).json()["members"]
        assert [member["name"] for member in members] == ["n1"]
