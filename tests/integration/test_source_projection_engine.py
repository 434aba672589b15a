"""``fields=``: the tailor cuts live sources exactly as the engine cuts stored ones.

A backfill asks the engine for ``_source`` includes (tailor/backfill/search.py)
and the live hits are cut by tailor/views/fields.py; the hand-over recognises
a document without ``_id`` by its cut source, so the two must agree on every
shape. Documents of every shape (nested and flat dotted keys, arrays of
objects, of scalars and of arrays, empty objects, nulls, keys beyond the BMP)
are stored as they are (mapping disabled, so shapes may clash), and each
pattern set's engine answer is compared with ``compile_fields``, document by
document. Seeded, so every run asks the same.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tailor.views.fields import compile_fields, engine_patterns
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle
from tests.tailor.test_tail_backfill import bulk

pytestmark = pytest.mark.integration

SHAPES: list[dict[str, Any]] = [
    {"a": {"b": 1, "c": {"d": 2}}, "ab": 3, "x": 4},
    {"a": {}, "b": {"c": {}}},
    {"a.b": 1, "a": {"c": 2}},
    {"a": [1, 2, {"b": 3, "c": 4}, [5, {"b": 6}], {"c": 7}], "s": [1, 2, 3]},
    {"a": None, "b": {"c": None}, "e": []},
    {"😀": 1, "k😀": 2, "é": 3, "a😀": {"b": 4}},
    {"a": {"b.c": 1, "b": {"c": 2}}},
    {"": {"a": 1}, "x": {"": 2}, "a.": 3},
    {"a": [[{"b": 1}], []], "c": [{}], "d": [{"e": {}}]},
    {"host": {"name": "h1", "ip": ["10.0.0.1"]}, "http.status": 500, "tags": ["x", "y"]},
    {"user": [{"name": "u1", "roles": ["r"]}, {"name": "u2", "id": 2}], "message": "m"},
    {"A": 1, "a": 2, "aA": {"b": 3}},
]

HAND_PATTERNS: list[tuple[str, ...]] = [
    ("a",),
    ("a*",),
    ("a.b",),
    ("a.*",),
    ("*.b",),
    ("*b",),
    ("*",),
    ("**",),
    ("b.c",),
    ("a.b.c",),
    ("a.c", "x"),
    ("x.a",),
    ("s",),
    ("e",),
    ("c",),
    ("d.e",),
    ("a", "a.b"),
    ("A",),
    ("é",),
    ("k*",),
    ("😀",),
    ("*😀",),
    ("😀", "é"),
    ("a😀.b",),
    ("host.name", "http.status"),
    ("http.*",),
    ("user.name",),
    ("user.*", "message"),
    ("*.name",),
    ("tags", "host"),
    ("nothing",),
]

#: Keys and pattern parts from a small alphabet, so that random patterns meet random keys.
KEYS = ["a", "b", "ab", "a.b", "b.a", "c", "a.b.c", "aa", "", "é", "😀"]
PARTS = ["a", "b", "c", "*", "a*", "*a", "*b*", "ab", "b*", "é", "😀"]


def random_value(rng: random.Random, depth: int) -> Any:
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return rng.choice([1, "s", None, True, 2.5, 0])
    if pick < 0.7:
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def random_patterns(rng: random.Random) -> tuple[str, ...]:
    patterns = (
        ".".join(rng.choice(PARTS) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 3))
    )
    return tuple(dict.fromkeys(patterns))


def corpus_docs() -> list[dict[str, Any]]:
    rng = random.Random(7321)
    randoms = [{rng.choice(KEYS): random_value(rng, 0) for _ in range(rng.randint(1, 4))} for _ in range(150)]
    return SHAPES + randoms


DOCS = corpus_docs()


@pytest.fixture(scope="module")
def corpus(engine: EngineHandle) -> Iterator[str]:
    index = f"fields-{uuid.uuid4().hex[:8]}"
    engine_request(engine.url, "PUT", f"/{index}", {"mappings": {"enabled": False}})
    bulk(engine.url, index, [doc | {"_id": str(n)} for n, doc in enumerate(DOCS)])
    yield index
    http("DELETE", f"{engine.url}/{index}")


def engine_cuts(
    engine: EngineHandle, index: str, pattern_sets: list[tuple[str, ...]]
) -> list[dict[str, Any]]:
    """Per pattern set, the engine's cut source of each document by ``_id`` (its ``_source`` includes)."""
    lines = []
    for patterns in pattern_sets:
        includes = engine_patterns(patterns)
        source: Any = {"includes": list(includes)} if includes else False
        body = {"query": {"match_all": {}}, "size": len(DOCS), "_source": source}
        lines += [json.dumps({"index": index}), json.dumps(body)]
    resp = http(
        "POST", f"{engine.url}/_msearch", "\n".join(lines) + "\n", {"content-type": "application/x-ndjson"}
    )
    assert resp.status == 200, resp.body
    answers = []
    for patterns, item in zip(pattern_sets, resp.json()["responses"], strict=True):
        assert "error" not in item, (patterns, item["error"])
        hits = item["hits"]["hits"]
        assert len(hits) == len(DOCS)
        answers.append({h["_id"]: h.get("_source", {}) for h in hits})
    return answers


def differences(engine: EngineHandle, index: str, pattern_sets: list[tuple[str, ...]]) -> list[Any]:
    found = []
    for patterns, cut in zip(pattern_sets, engine_cuts(engine, index, pattern_sets), strict=True):
        project = compile_fields(patterns)
        for n, doc in enumerate(DOCS):
            ours = project(doc)
            if ours != cut[str(n)]:
                found.append({"patterns": patterns, "doc": doc, "engine": cut[str(n)], "tailor": ours})
    return found


def test_hand_picked_patterns_cut_every_document_as_the_engine_does(
    engine: EngineHandle, corpus: str
) -> None:
    assert differences(engine, corpus, HAND_PATTERNS) == []


def test_random_patterns_cut_every_document_as_the_engine_does(engine: EngineHandle, corpus: str) -> None:
    rng = random.Random(1189)
    pattern_sets = [random_patterns(rng) for _ in range(240)]
    for start in range(0, len(pattern_sets), 60):
        assert differences(engine, corpus, pattern_sets[start : start + 60]) == []


def test_the_corpus_tells_the_rules_apart(engine: EngineHandle, corpus: str) -> None:
    """Guard against a vacuous pass: the engine's cuts are neither all empty nor all whole."""
    cuts = engine_cuts(engine, corpus, [("a.b",), ("a",), ("*b",)])
    kept = [sum(bool(s) for s in cut.values()) for cut in cuts]
    assert all(k >= 20 for k in kept), kept
    whole = [sum(cut[str(n)] == doc for n, doc in enumerate(DOCS)) for cut in cuts]
    assert all(w < len(DOCS) for w in whole), whole
    assert cuts[0]["3"] == {"a": [{"b": 3}, [{"b": 6}]]}  # inside arrays, scalars beside objects dropped
