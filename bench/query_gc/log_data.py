"""Deterministic data: log lines, and the alert queries people type on them.

Seeded, so that every run ingests the same documents and registers the same
queries, and runs compare.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.stored_queries import Query
from bench.workload import LOG_WORDS

SEED = 20261127

Doc = dict[str, Any]

LEVELS = ["info", "warn", "error", "debug"]
LEVEL_WEIGHTS = [70, 15, 8, 7]
SERVICES = [f"svc{i}" for i in range(20)]
#: One token each: ``host:web-001`` in a query string would match every "web" host.
HOSTS = [f"web{i:03d}" for i in range(200)]
STATUSES = [200, 201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504]
STATUS_WEIGHTS = [50, 5, 4, 2, 5, 4, 3, 2, 9, 2, 6, 3, 4, 1]


class LogData:
    """A Zipf-like vocabulary; documents and queries each come from their own seeded RNG."""

    def __init__(self, seed: int = SEED, size: int = 400) -> None:
        rng = random.Random(seed)
        words, seen = list(LOG_WORDS), set(LOG_WORDS)
        while len(words) < size:
            word = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.vocab = words
        self.weights = [1.0 / (rank + 8) for rank in range(size)]

    def docs(self, count: int) -> list[Doc]:
        rng = random.Random(SEED + 1)
        start = datetime(2026, 11, 1, tzinfo=UTC)
        return [
            {
                "@timestamp": (start + timedelta(milliseconds=97 * i)).isoformat(timespec="milliseconds"),
                "level": rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
                "service": rng.choice(SERVICES),
                "host": rng.choice(HOSTS),
                "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                "latency_ms": int(rng.expovariate(1 / 80)),
                "message": " ".join(rng.choices(self.vocab, self.weights, k=rng.randint(4, 10))),
                "user": f"u{rng.randint(1, 5000)}",
            }
            for i in range(count)
        ]

    def queries(self, seed: int) -> Iterator[Query]:
        """An endless mix of Lucene query strings and query DSL, as alerts and look-ups are."""
        rng = random.Random(seed)
        while True:
            yield self._query(rng)

    def _query(self, rng: random.Random) -> Query:
        svc, host = rng.choice(SERVICES), rng.choice(HOSTS)
        word, word2 = rng.choice(self.vocab), rng.choice(self.vocab)
        kind = rng.randrange(9)
        if kind == 0:
            return f"user:u{rng.randint(1, 5000)}"
        if kind == 1:
            return f"host:{host} AND level:{rng.choice(['error', 'warn'])}"
        if kind == 2:
            return f"service:{svc} AND status:{rng.choice([500, 502, 503, 504])}"
        if kind == 3:
            return f'message:"{word} {word2}"'
        if kind == 4:
            return f"level:error AND message:{word} AND NOT host:{host}"
        if kind == 5:
            return {"match": {"message": {"query": f"{word} {word2}", "operator": "and"}}}
        if kind == 6:
            return {
                "bool": {
                    "filter": [
                        {"term": {"service.keyword": svc}},
                        {"range": {"latency_ms": {"gte": rng.choice([300, 400, 500, 750])}}},
                    ]
                }
            }
        if kind == 7:
            return {
                "bool": {"filter": [{"term": {"host.keyword": host}}, {"range": {"status": {"gte": 500}}}]}
            }
        return {
            "bool": {
                "must": [{"term": {"level.keyword": "error"}}, {"match": {"message": word}}],
                "filter": [{"term": {"service.keyword": svc}}],
            }
        }


def request_bodies(docs: list[Doc], size: int) -> list[bytes]:
    """The documents as ready-to-send JSON arrays of ``size``: the senders only send."""
    return [json.dumps(docs[i : i + size]).encode() for i in range(0, len(docs) - size + 1, size)]
