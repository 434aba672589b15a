"""The write side's access matrix: principal x operation x target, every cell against a real beater.

One beater with an access file: writer ``shipper`` of ``mx-logs-*`` and an
anonymous writer of ``mx-scratch-*``. Every principal (the writer by Bearer,
by Basic, by ApiKey; anonymous; a wrong credential) tries every write path
(ingest, the bulk API's four actions, both kinds of template through the
pass-through) on every kind of target: one of its own, one outside, an
alias inside its targets that writes outside them, a date-math name,
estrom's own percolator index and a hidden index. The expected outcome of
each cell follows from one rule, written out in :func:`expected`.

The read side's matrix (readers x targets, over WAMP and HTTP) is in
tests/readers/ and tests/security/test_reader_aliases.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from common.access.tokens import token_hash
from devstack.handles import EngineHandle, RouterHandle, ServiceHandle
from devstack.stack import Stack
from tests.http_client import Response, engine_request, http

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
TOKEN = "matrix-writer-" + uuid.uuid4().hex

#: principal -> (Authorization header or None, the targets' prefix it may write, or None: refused)
PRINCIPALS: dict[str, tuple[str | None, str | None]] = {
    "writer-bearer": (f"Bearer {TOKEN}", "mx-logs-"),
    "writer-basic": ("Basic " + base64.b64encode(f"shipper:{TOKEN}".encode()).decode(), "mx-logs-"),
    "writer-apikey": ("ApiKey " + base64.b64encode(f"shipper:{TOKEN}".encode()).decode(), "mx-logs-"),
    "anonymous": (None, "mx-scratch-"),
    "wrong-credential": ("Bearer not-a-writers-token-0123456789", None),
}
#: target kind -> how to name it for a principal whose own prefix is ``own``
TARGETS = {
    "own": lambda own: f"{own}{RUN}",
    "outside": lambda own: f"mx-payroll-{RUN}",
    "alias-out": lambda own: f"{own}redirect-{RUN}",
    "date-math": lambda own: f"<{own}{RUN}-{{now/d}}>",
    "estrom-own": lambda own: "estrom-queries-_shared-0",
    "hidden": lambda own: f".mx-hidden-{RUN}",
}
OPERATIONS = (
    "ingest",
    "bulk-index",
    "bulk-create",
    "bulk-update",
    "bulk-delete",
    "template",
    "index-template",
)


def expected(principal: str, operation: str, target: str) -> str:
    """``unauthorized`` (401), ``refused`` (403, whole or per item) or ``allowed``."""
    if PRINCIPALS[principal][1] is None:
        return "unauthorized"
    if target == "hidden" and operation == "ingest":
        return "invalid"  # names starting with "." are refused as names (400) before any writer check
    if target in ("outside", "estrom-own", "hidden"):
        return "refused"
    if target == "alias-out":
        # Writes land in the alias's write index; a template's pattern is only a name.
        return "allowed" if operation in ("template", "index-template") else "refused"
    if target == "date-math" and operation == "ingest":
        return "invalid"  # ingest takes index names, not date math (400)
    if target == "date-math" and operation in ("template", "index-template"):
        return "refused"  # a template's patterns are names and wildcards, never date math
    return "allowed"


@pytest.fixture(scope="module")
def matrix_beater(stack: Stack, engine: EngineHandle, router: RouterHandle) -> Iterator[ServiceHandle]:
    access = stack.workdir / "matrix" / "access.json"
    access.parent.mkdir(parents=True, exist_ok=True)
    access.write_text(
        json.dumps(
            {
                "writers": [{"name": "shipper", "token": token_hash(TOKEN), "targets": ["mx-logs-*"]}],
                "anonymous_writer": {"targets": ["mx-scratch-*"]},
            }
        )
    )
    for own in ("mx-logs-", "mx-scratch-"):
        alias = TARGETS["alias-out"](own)
        engine_request(
            engine.url,
            "PUT",
            f"/mx-payroll-{RUN}-{own}behind",
            {"aliases": {alias: {"is_write_index": True}}},
        )
    beater = stack.start_service("beater", router_url=router.service_url, ESTROM_ACCESS=str(access))
    yield beater
    beater.stop()


def attempt(url: str, principal: str, operation: str, name: str) -> Response:
    header, _ = PRINCIPALS[principal]
    headers = {"authorization": header} if header else {}
    if operation == "ingest":
        return http(
            "POST",
            f"{url}/api/v0.1/ingest/{quote(name, safe='')}",
            "{}",
            {"content-type": "application/json", **headers},
        )
    if operation.startswith("bulk-"):
        action = operation[len("bulk-") :]
        meta = {action: {"_index": name, "_id": uuid.uuid4().hex}}
        lines = (
            [meta]
            if action == "delete"
            else [meta, {"doc": {"k": 1}, "doc_as_upsert": True} if action == "update" else {"k": 1}]
        )
        body = "".join(json.dumps(line) + "\n" for line in lines)
        return http("POST", f"{url}/_bulk", body, {"content-type": "application/x-ndjson", **headers})
    kind = "_template" if operation == "template" else "_index_template"
    # Composable templates of one priority may not overlap: a pattern of its own each.
    pattern = f"{name}-{uuid.uuid4().hex[:6]}-*"
    template: dict[str, object] = {"index_patterns": [pattern]}
    if kind == "_index_template":
        template["priority"] = 900
    return http(
        "PUT",
        f"{url}/{kind}/mx-{RUN}-{uuid.uuid4().hex[:6]}",
        json.dumps(template),
        {"content-type": "application/json", **headers},
    )


def outcome(operation: str, resp: Response) -> str:
    if resp.status == 401:
        return "unauthorized"
    if resp.status == 403:
        return "refused"
    if resp.status == 400:
        return "invalid"
    if operation.startswith("bulk-") and resp.status == 200:
        status = next(iter(resp.json()["items"][0].values()))["status"]
        return {403: "refused", 400: "invalid"}.get(status, "allowed" if status < 500 else f"item {status}")
    return "allowed" if resp.status == 200 else f"status {resp.status}: {resp.body[:200]!r}"


CELLS = [(p, o, t) for p in PRINCIPALS for o in OPERATIONS for t in TARGETS]


@pytest.mark.parametrize(("principal", "operation", "target"), CELLS)
def test_cell(matrix_beater: ServiceHandle, principal: str, operation: str, target: str) -> None:
    own = PRINCIPALS[principal][1] or "mx-logs-"
    name = TARGETS[target](own)
    resp = attempt(matrix_beater.url, principal, operation, name)
    assert outcome(operation, resp) == expected(principal, operation, target), resp.body[:300]


def test_refused_cells_stored_nothing(matrix_beater: ServiceHandle, engine: EngineHandle) -> None:
    """After every cell: nothing in the indices outside, nor in estrom's own beyond its queries."""
    engine_request(engine.url, "POST", "/_refresh")
    found = http("GET", f"{engine.url}/mx-payroll-{RUN}*/_count")
    assert found.status in (200, 404)
    if found.status == 200:
        assert found.json()["count"] == 0
    own = http("GET", f"{engine.url}/estrom-queries-*/_search?q=k:1")
    assert own.json()["hits"]["total"]["value"] == 0
