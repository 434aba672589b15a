"""The canonical form of a query string matches exactly what the original matches, on the engine.

Hypothesis writes random query trees (with mixed, unparenthesized chains and
every prefix), and the engine runs original and canonical side by side over a
generated corpus; any difference is a canonicalization that changed meaning.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.query.lucene import canonical_lucene
from tests.http_client import engine_request, http
from tests.lucene_strategies import FIELDS, TERMS, trees, write
from tests.real_stack import EngineHandle


@pytest.fixture(scope="module")
def corpus(engine: EngineHandle) -> Iterator[str]:
    index = f"canon-{uuid.uuid4().hex[:8]}"
    rng = random.Random(4242)
    lines = []
    for n in range(80):
        doc = {f: " ".join(rng.sample(TERMS, rng.randrange(0, 3))) for f in FIELDS if rng.random() < 0.8}
        lines.append(json.dumps({"index": {"_index": index, "_id": str(n)}}))
        lines.append(json.dumps(doc))
    resp = http(
        "POST",
        f"{engine.url}/_bulk?refresh=true",
        "\n".join(lines) + "\n",
        {"content-type": "application/x-ndjson"},
    )
    assert resp.status == 200
    assert not resp.json()["errors"]
    yield index
    http("DELETE", f"{engine.url}/{index}")


def matches(engine: EngineHandle, index: str, queries: list[str]) -> list[set[str] | str]:
    """The ids each query matches, or the engine's error type when it refuses the query."""
    lines = []
    for q in queries:
        lines.append(json.dumps({"index": index}))
        lines.append(
            json.dumps(
                {
                    "query": {"query_string": {"query": q, "default_field": "f1"}},
                    "size": 100,
                    "_source": False,
                }
            )
        )
    resp = http(
        "POST", f"{engine.url}/_msearch", "\n".join(lines) + "\n", {"content-type": "application/x-ndjson"}
    )
    out = []
    out: list[set[str] | str] = []
    for item in resp.json()["responses"]:
        if "error" in item:
            out.append(item["error"]["type"])
        else:
            out.append({h["_id"] for h in item["hits"]["hits"]})
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=trees(),
    parens=st.sampled_from(["always", "never", "extra"]),
    spell=st.sampled_from(["words", "symbols"]),
)
def test_canonical_matches_the_same_documents(
    engine: EngineHandle, corpus: str, tree: object, parens: str, spell: str
) -> None:
    original = write(tree, parens=parens, spell=spell)
    canonical = canonical_lucene(original)
    found_original, found_canonical = matches(engine, corpus, [original, canonical])
    assert isinstance(found_original, set), f"generator wrote a query the engine refuses: {original}"
    assert found_canonical == found_original, (original, canonical)


def test_the_corpus_discriminates(engine: EngineHandle, corpus: str) -> None:
    """Guard against a vacuous pass: the corpus tells apart what the parser tells apart.

    With the default operator OR, a clause next to an AND becomes required, so
    reordering a mixed chain changes which clauses are required.
    """
    first, second, third, fourth = matches(
        engine,
        corpus,
        [
            "f1:t1 AND f2:t2 OR f3:t3",
            "f1:t1 OR f3:t3 AND f2:t2",
            "f1:t1 f2:t2 AND f3:t3",
            "f2:t2 f1:t1 AND f3:t3",
        ],
    )
    assert first != second
    assert third != fourth
    assert engine_request(engine.url, "GET", f"/{corpus}/_count")["count"] == 80
