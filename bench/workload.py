"""The comparison's data: log lines, and queries that match a known set of them.

Query ``k`` of a set matches the documents whose ``slot`` field is its token
``q<k>``, written in one of four spellings (Lucene strings and query DSL, as
alert rules look). Document ``j`` of a run carries the token of query
``(j // every) % len(tokens)`` when ``j % every == 0`` and ``"none"``
otherwise: a fraction ``1 / every`` of the documents matches exactly one
query each, so how many hits every sid must receive is known for any prefix
of the stream, whatever the number of stored queries.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from beater.matching.search import (
    search_body as _search_body,  # the beater's own request, so the ceiling is like for like
)
from common.query.identity import canonicalize, normalize_query, sid_for

SEED = 20261127
Query = str | dict[str, Any]

LEVELS = ["info", "warn", "error"]
LEVEL_WEIGHTS = [80, 12, 8]
STATUSES = [200, 201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 502, 503]
#: The words log messages are made of (``bench/query_gc/log_data.py`` grows its vocabulary from them).
_LOG_TEXT = (
    "timeout connection refused reset retry failed success request response latency slow error "
    "exception null pointer disk full memory heap cpu thread pool exhausted queue backlog dropped "
    "packet socket closed opened handshake certificate expired token invalid user login logout "
    "password denied granted cache miss hit evicted write read commit rollback deadlock lock "
    "acquired released shard replica leader election vote upstream downstream"
)
LOG_WORDS = _LOG_TEXT.split()


def slot_token(k: int) -> str:
    return f"q{k:05d}"


def query_for(k: int) -> Query:
    """Query ``k``: matches exactly the documents whose slot is ``slot_token(k)``."""
    token = slot_token(k)
    kind = k % 4
    if kind == 0:
        return f"slot:{token}"
    if kind == 1:
        return f"slot:{token} AND NOT level:debug"
    if kind == 2:
        return {"match": {"slot": token}}
    return {"bool": {"must": [{"match": {"slot": token}}], "filter": [{"range": {"status": {"gte": 100}}}]}}


@dataclass
class QuerySet:
    """``n`` queries on one index: their tokens, queries and sids, in the same order."""

    index: str
    tokens: list[str]
    queries: list[Query]
    sids: list[str]

    @classmethod
    def make(cls, index: str, n: int) -> QuerySet:
        queries = [query_for(k) for k in range(n)]
        sids = [sid_for(index, canonicalize(normalize_query(q))) for q in queries]
        return cls(index, [slot_token(k) for k in range(n)], queries, sids)

    def sid_of(self) -> dict[str, str]:
        return dict(zip(self.tokens, self.sids, strict=True))


def base_docs(count: int, seed: int = SEED) -> list[str]:
    """Log lines as JSON without their closing brace, so slot and send time are appended cheaply."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    docs = [
        {
            "@timestamp": (start + timedelta(milliseconds=97 * i)).isoformat(timespec="milliseconds"),
            "level": rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
            "service": f"svc{rng.randrange(20)}",
            "status": rng.choice(STATUSES),
            "message": " ".join(rng.choices(LOG_WORDS, k=rng.randint(4, 12))),
            "user": f"u{rng.randint(1, 2000)}",
            "seq": i,
        }
        for i in range(count)
    ]
    return [json.dumps(d, separators=(",", ":"))[:-1] for d in docs]


@dataclass
class Stream:
    """An endless numbered stream of documents over ``tokens``; batch ``k`` holds docs ``kB..kB+B-1``."""

    base: list[str]
    tokens: list[str]
    every: int
    size: int  # documents per batch (B)

    def token(self, j: int) -> str:
        if j % self.every:
            return "none"
        return self.tokens[(j // self.every) % len(self.tokens)]

    def docs(self, k: int, sent_at: float) -> list[str]:
        first = k * self.size
        return [
            f'{self.base[j % len(self.base)]},"slot":"{self.token(j)}","sent_at":{sent_at!r}}}'
            for j in range(first, first + self.size)
        ]

    def body(self, k: int, sent_at: float) -> bytes:
        """Batch ``k`` as a JSON array, stamped with its send time (Logstash ``json_batch``)."""
        return ("[" + ",".join(self.docs(k, sent_at)) + "]").encode()

    def expected(self, batches: list[int]) -> Counter[str]:
        """Hits each token's query must get from these batches."""
        got: Counter[str] = Counter()
        for k in batches:
            for j in range(k * self.size, (k + 1) * self.size):
                if not j % self.every:
                    got[self.token(j)] += 1
        return got

    def percolate_body(self, k: int, scope: dict[str, Any] | None = None) -> str:
        """The beater's percolate request for batch ``k`` as one ``documents`` array.

        ``scope``: the beater's filter on the covering targets (``beater.matching.search.scope_filter``).
        """
        marker = "__DOCS__"
        body = json.dumps(_search_body({"documents": marker}, scope=scope))
        return body.replace(f'"{marker}"', "[" + ",".join(self.docs(k, 0.0)) + "]")
