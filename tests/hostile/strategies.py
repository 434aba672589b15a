"""Hypothesis strategies for hostile input: bodies, URL parameters, query strings, DSL.

Built to hit the edges the parsers must survive: invalid UTF-8, unpaired
surrogates, numbers past double range, nesting far past Python's recursion
limit, forbidden and unknown query types, and plain garbage.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from common.query.limits import ALLOWED_TYPES, COMPOUND_TYPES
from tests.lucene_strategies import trees, write

#: Text that can cross a JSON WAMP serializer (no unpaired surrogates).
WAMP_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
#: Text that may hold anything, surrogates included (only inside JSON escapes).
ANY_TEXT = st.text(max_size=40)
SPECIAL = st.sampled_from(list('\\/*?"<>|,#:()[]{}^~+-!&=.' + "\x00\n\t é☃"))
FIELD = st.one_of(
    st.sampled_from(["message", "level", "a.b", "n", "_id", "_source", "", ".", "script"]), ANY_TEXT
)

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(FIELD, children, max_size=4)),
    max_leaves=12,
)


def deep(depth: int, kind: str) -> str:
    """JSON text nested ``depth`` levels: arrays, objects, or bool queries."""
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"bool":{"must":' * depth + '{"match_all":{}}' + "}}" * depth


DEPTHS = st.one_of(st.integers(1, 40), st.integers(900, 1100), st.just(50_000))


def dumps(value: Any) -> str:
    """JSON as a careless sender writes it: NaN/Infinity tokens, surrogates escaped."""
    return json.dumps(value, allow_nan=True)


# --- ingest bodies -------------------------------------------------------------------

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/x-ndjson",
            "application/ndjson",
            "application/vnd.estrom+json",
            "text/json",
            "text/plain",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "",
            ";;;",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)

_DOCS = st.dictionaries(FIELD, JSON_VALUES, max_size=5)
_LINES = st.one_of(_DOCS.map(dumps), JSON_VALUES.map(dumps), st.text(max_size=30))

BODIES = st.one_of(
    _DOCS.map(dumps),
    st.lists(st.one_of(_DOCS, JSON_VALUES), max_size=8).map(dumps),
    JSON_VALUES.map(dumps),
    st.lists(_LINES, max_size=8).map("\n".join),
    st.builds(deep, DEPTHS, st.sampled_from(["array", "object"])),
    st.builds(lambda n: '{"n": ' + "9" * n + "}", st.integers(1, 5000)),
    st.sampled_from(['{"n": 1e999}', '{"n": -1e999}', '{"n": NaN}', '{"s": "\\ud800"}', '{"a":1}{"b":2}']),
    st.text(max_size=80),
).map(lambda text: text.encode("utf-8", "surrogatepass"))

RAW_BODIES = st.one_of(
    BODIES,
    st.binary(max_size=200),
    st.sampled_from([b'{"a": "\xff\xfe"}', b"\xef\xbb\xbf{}", b"\x00" * 10, b'{"a":"\xed\xa0\x80"}']),
)


# --- tailor parameters ----------------------------------------------------------------

_PARAM_VALUE = st.one_of(
    st.binary(max_size=30),
    # Deep, and some over the HTTP layer's 16 KiB request line (414).
    st.builds(deep, st.integers(1, 1100), st.sampled_from(["array", "object", "bool"])).map(str.encode),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        ["0", "-1", "1e309", "nan", "inf", "1.5", "99999999999999999999", "", "json", "sse", "ndjson"]
    ).map(str.encode),
)
#: Index names in a URL path, kept under the HTTP layer's 16 KiB request line
#: (what happens past it is tests/hostile/test_limits.py's business).
INDEX_NAMES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(SPECIAL, max_size=20).map(lambda cs: "".join(cs).encode()),
    st.sampled_from([b".", b"..", b"_x", b"-x", b"UPPER", b"a" * 256, b"%00", b"a/b", b""]),
)
_NAMES = st.sampled_from(["i", "q", "s", "n", "limit", "timeout", "format", "lastEventId", "x"])
TAIL_PARAMS = st.lists(st.tuples(_NAMES, _PARAM_VALUE), max_size=7)


# --- queries --------------------------------------------------------------------------

LUCENE = st.one_of(
    trees(mixed=True).map(lambda t: write(t, parens="never")),
    st.lists(
        st.one_of(SPECIAL, st.sampled_from(["AND", "OR", "NOT", "TO", "a", "b:c", "/x+/", "*", "?"])),
        max_size=12,
    ).map(" ".join),
    st.lists(SPECIAL, max_size=20).map("".join),
    WAMP_TEXT,
    st.builds(lambda n: "NOT " * n + "a", DEPTHS),
    st.builds(lambda n: "(" * n + "a" + ")" * n, DEPTHS),
    st.builds(lambda n: " OR ".join(f"t{i}" for i in range(n)), st.integers(1, 3000)),
)


def _query_node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    kind = st.one_of(
        st.sampled_from(sorted(ALLOWED_TYPES)),
        st.sampled_from(
            ["script", "wrapper", "percolate", "has_child", "function_score", "more_like_this", "nope"]
        ),
    )
    compound = st.builds(
        lambda k, key, subs: {k: {key: subs}},
        st.sampled_from(sorted(COMPOUND_TYPES)),
        st.sampled_from(sorted({key for keys in COMPOUND_TYPES.values() for key in keys})),
        st.one_of(children, st.lists(children, max_size=3)),
    )
    leaf = st.builds(
        lambda k, body: {k: body},
        kind,
        st.one_of(st.dictionaries(FIELD, JSON_VALUES, max_size=3), JSON_VALUES),
    )
    return st.one_of(compound, leaf)


DSL = st.one_of(
    st.recursive(st.builds(lambda f, v: {"term": {f: v}}, FIELD, SCALARS), _query_node, max_leaves=8),
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
    st.builds(lambda q: {"query": q}, JSON_VALUES),
    # Objects deeper than this break hypothesis' own (recursive) reporting; deeper
    # DSL is sent as text through the tailor's q= (TAIL_PARAMS).
    st.builds(lambda n: json.loads(deep(min(n, 150), "bool")), DEPTHS),
    st.sampled_from(
        [
            {"terms": {"user": {"index": "users", "id": "1", "path": "f"}}},
            {"query_string": {"query": "NOT " * 3000 + "a"}},
            {"match": {"message": {"query": "x", "analyzer": "nope"}}},
            {"range": {"n": {"gte": "not a number"}}},
            {"regexp": {"message": "(" * 500}},
        ]
    ),
)
