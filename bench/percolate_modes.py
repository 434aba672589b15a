"""Benchmark the two ways the beater can percolate a batch of documents.

Why this exists
---------------
The beater percolates batches of ingested JSON documents against *all* stored
queries of a percolator index. Elasticsearch offers two request shapes:

  (A) ``batch``   one ``percolate`` query with a ``documents`` array; each hit is
                  a stored query, and ``fields._percolator_document_slot`` lists
                  the batch positions it matched.
  (B) ``msearch`` one ``_msearch`` with a single-document ``percolate`` search
                  per document; each response lists the queries matching it.

elastic/elasticsearch#54188 reports (A) to be much slower per request because
the engine indexes the whole batch into a temporary Lucene index. This script
measures both shapes on a real engine over a matrix of batch sizes and stored
query counts, plus the same requests wrapped in ``bool.filter`` (no scoring),
and a raw ``_bulk`` indexing baseline of the same documents for scale.

Before any timing it asserts that every variant returns the *same* match set
(and, for small query counts, the same set as running each stored query as a
normal search over the documents), with paging exercised. It also probes:
whether ``_percolator_document_slot`` survives filter context, and what each
mode does when one document of the batch conflicts with the mapping.

Completeness: a hit page is capped by ``index.max_result_window`` (10000 by
default; ``from + size`` above it is rejected). Every request asks for
``size=10000`` and ``track_total_hits: true``; if ``hits.total`` exceeds the
hits returned, the request is re-run page by page with ``search_after`` sorted
on the ``qid`` keyword field (a stored query matches at most once per request,
so with <= 10000 stored queries one page is always enough).

Usage::

    scripts/bench percolate [--quick]          (starts its own engine)
    .venv/bin/python bench/percolate_modes.py --engine-url http://127.0.0.1:9200 [--quick]

Progress goes to stderr, the results table and findings to stdout.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch, RequestError, helpers

warnings.filterwarnings("ignore")  # "security not enabled" deprecation headers

SEED = 20240611
MAX_WINDOW = 10000  # default index.max_result_window: largest usable from+size
PERC_PREFIX = "estrom-bench-perc-"
RAW_INDEX = "estrom-bench-raw"
ORACLE_INDEX = "estrom-bench-oracle"

Doc = dict[str, Any]
Match = tuple[int, str]  # (position of the document in its batch, qid)

# --------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------

LEVELS = ["info", "warn", "error", "debug"]
LEVEL_WEIGHTS = [60, 15, 10, 15]
SERVICES = [
    "api",
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "db",
    "edge",
    "gateway",
    "inventory",
    "mailer",
    "media",
    "notify",
    "orders",
    "payments",
    "search",
    "session",
    "shipping",
    "stats",
    "worker",
]
LOG_WORDS = [
    "timeout",
    "connection",
    "refused",
    "reset",
    "retry",
    "failed",
    "success",
    "request",
    "response",
    "latency",
    "slow",
    "error",
    "exception",
    "null",
    "pointer",
    "disk",
    "full",
    "memory",
    "heap",
    "cpu",
    "thread",
    "pool",
    "exhausted",
    "queue",
    "backlog",
    "dropped",
    "packet",
    "socket",
    "closed",
    "opened",
    "handshake",
    "certificate",
    "expired",
    "token",
    "invalid",
    "user",
    "login",
    "logout",
    "password",
    "denied",
    "granted",
    "cache",
    "miss",
    "hit",
    "evicted",
    "write",
    "read",
    "commit",
    "rollback",
    "deadlock",
    "lock",
    "acquired",
    "released",
    "shard",
    "replica",
    "leader",
    "election",
    "vote",
    "upstream",
    "downstream",
]


def build_vocabulary(rng: random.Random, size: int = 500) -> list[str]:
    """Log-ish words first, then pronounceable filler words up to ``size``."""
    onsets, nuclei, codas = "bcdfghklmnprstvz", "aeiou", ["", "n", "r", "s", "l", "x"]
    words, seen = list(LOG_WORDS), set(LOG_WORDS)
    while len(words) < size:
        w = "".join(rng.choice(onsets) + rng.choice(nuclei) for _ in range(rng.randint(2, 3)))
        w += rng.choice(codas)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@dataclass
class Dataset:
    """Vocabulary with a Zipf-like word distribution; makes docs and queries."""

    rng: random.Random
    vocab: list[str]
    weights: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.weights = [1.0 / (rank + 8) for rank in range(len(self.vocab))]

    def word(self) -> str:
        return self.rng.choices(self.vocab, self.weights)[0]

    def rare_word(self) -> str:
        return self.rng.choice(self.vocab)

    def doc(self, i: int) -> Doc:
        ts = datetime(2024, 6, 1, tzinfo=UTC) + timedelta(milliseconds=137 * i)
        return {
            "@timestamp": ts.isoformat(timespec="milliseconds"),
            "level": self.rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
            "service": self.rng.choice(SERVICES),
            "status": self.rng.choices(
                [200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504, 599],
                [40, 5, 5, 2, 2, 4, 4, 3, 3, 8, 1, 2, 6, 3, 5, 3, 1],
            )[0],
            "message": " ".join(self.word() for _ in range(self.rng.randint(3, 9))),
            "user": f"u{self.rng.randint(1, 5000)}",
        }

    def query(self) -> dict[str, Any]:
        """One stored query: a mix of Lucene query strings and DSL."""
        r, kind = self.rng, self.rng.randrange(10)
        svc, lvl = r.choice(SERVICES), r.choice(LEVELS)
        if kind == 0:
            return {"query_string": {"query": f"level:{lvl} AND service:{svc}"}}
        if kind == 1:
            words = f"{self.rare_word()} OR {self.rare_word()}"
            return {"query_string": {"query": f"message:({words})"}}
        if kind == 2:
            lo = r.choice([400, 404, 429, 500, 502, 503])
            hi = lo + r.randint(0, 4)
            return {"query_string": {"query": f"status:[{lo} TO {hi}] AND service:{svc}"}}
        if kind == 3:
            return {"query_string": {"query": self.rare_word()}}  # default field estrom_all
        if kind == 4:
            return {"query_string": {"query": f"{self.rare_word()} AND NOT level:debug"}}
        if kind == 5:
            return {"match": {"message": f"{self.rare_word()} {self.rare_word()}"}}
        if kind == 6:
            return {"term": {"user.keyword": f"u{r.randint(1, 5000)}"}}
        if kind == 7:
            return {"match_phrase": {"message": f"{self.word()} {self.word()}"}}
        if kind == 8:
            return {
                "bool": {
                    "filter": [{"term": {"service.keyword": svc}}, {"range": {"status": {"gte": 500}}}],
                    "must": [{"match": {"message": self.rare_word()}}],
                }
            }
        return {
            "bool": {
                "must": [{"term": {"level.keyword": "error"}}],
                "should": [{"match": {"message": self.rare_word()}}, {"term": {"service.keyword": svc}}],
                "minimum_should_match": 1,
            }
        }


def make_dataset() -> Dataset:
    rng = random.Random(SEED)
    return Dataset(rng=rng, vocab=build_vocabulary(rng))


def make_queries(ds: Dataset, count: int) -> list[Doc]:
    """Stored percolator docs; qid is zero-padded so keyword sort == creation order."""
    return [{"qid": f"q{i:06d}", "query": ds.query()} for i in range(count)]


# --------------------------------------------------------------------------
# Index setup
# --------------------------------------------------------------------------


def _text_kw() -> dict[str, Any]:
    return {
        "type": "text",
        "copy_to": "estrom_all",
        "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
    }


def index_body(percolator: bool) -> dict[str, Any]:
    """Mapping from the beater's spec; the percolator variant adds query + qid."""
    props: dict[str, Any] = {
        "estrom_all": {"type": "text"},
        "@timestamp": {"type": "date"},
        "level": _text_kw(),
        "service": _text_kw(),
        "message": _text_kw(),
        "user": _text_kw(),
        "status": {"type": "long", "copy_to": "estrom_all"},
    }
    if percolator:
        props |= {"query": {"type": "percolator"}, "qid": {"type": "keyword"}}
    return {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "index.query.default_field": "estrom_all",
        },
        "mappings": {
            "dynamic_templates": [
                {"strings": {"match_mapping_type": "string", "mapping": _text_kw()}},
            ],
            "properties": props,
        },
    }


def recreate_index(es: Elasticsearch, name: str, percolator: bool) -> None:
    es.indices.delete(index=name, ignore_unavailable=True)
    es.indices.create(index=name, body=index_body(percolator))


def load_index(es: Elasticsearch, name: str, docs: list[Doc], ids: list[str]) -> None:
    """Bulk-load, refresh and merge to one segment so every run sees the same layout."""
    actions = ({"_index": name, "_id": i, "_source": d} for i, d in zip(ids, docs, strict=True))
    helpers.bulk(es, actions, chunk_size=2000, request_timeout=300)
    es.indices.refresh(index=name)
    es.indices.forcemerge(index=name, max_num_segments=1, request_timeout=300)


# --------------------------------------------------------------------------
# The two percolation modes (each with a scoring and a filter-context variant)
# --------------------------------------------------------------------------


def percolate_clause(docs: list[Doc] | Doc, filtered: bool, wrapper: str = "bool") -> dict[str, Any]:
    key = "documents" if isinstance(docs, list) else "document"
    perc = {"percolate": {"field": "query", key: docs}}
    if not filtered:
        return perc
    if wrapper == "constant_score":
        return {"constant_score": {"filter": perc}}
    return {"bool": {"filter": [perc]}}


def search_body(
    query: dict[str, Any], size: int, after: list[Any] | None = None, sorted_: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "size": size, "track_total_hits": True, "_source": False}
    if sorted_:
        body["sort"] = [{"qid": "asc"}]
    if after is not None:
        body["search_after"] = after
    return body


def check_ok(resp: dict[str, Any]) -> None:
    """A partial answer is a wrong answer: fail loudly on shard failures/timeouts."""
    if "error" in resp:
        err = resp["error"]
        raise RuntimeError(f"search failed: {err.get('type')}: {err.get('reason')}")
    if resp.get("timed_out") or resp.get("_shards", {}).get("failed", 0):
        raise RuntimeError(f"partial search result: {resp.get('_shards')}")


def all_hits_paged(es: Elasticsearch, index: str, query: dict[str, Any], page: int) -> list[dict[str, Any]]:
    """Every hit of ``query`` via search_after on qid (for totals beyond one page)."""
    hits: list[dict[str, Any]] = []
    after: list[Any] | None = None
    while True:
        resp = es.search(index=index, body=search_body(query, page, after, sorted_=True))
        check_ok(resp)
        batch = resp["hits"]["hits"]
        hits.extend(batch)
        if len(batch) < page:
            return hits
        after = batch[-1]["sort"]


def hit_qid(hit: dict[str, Any]) -> str:
    return hit["_id"]  # stored query _id == qid


def run_batch_mode(
    es: Elasticsearch,
    index: str,
    docs: list[Doc],
    filtered: bool,
    page: int = MAX_WINDOW,
    wrapper: str = "bool",
) -> tuple[set[Match], int]:
    """Mode A: one percolate query over the whole batch. Returns (matches, server took ms)."""
    query = percolate_clause(docs, filtered, wrapper)
    resp = es.search(
        index=index,
        body=search_body(query, page),
        filter_path="took,timed_out,_shards,hits.total,hits.hits._id,hits.hits.fields",
    )
    check_ok(resp)
    hits = resp["hits"].get("hits", [])
    if resp["hits"]["total"]["value"] > len(hits):
        hits = all_hits_paged(es, index, query, page)
    matches = set()
    for h in hits:
        slots = h.get("fields", {}).get("_percolator_document_slot")
        if slots is None:
            raise AssertionError(f"hit {h['_id']} lacks _percolator_document_slot")
        matches.update((slot, hit_qid(h)) for slot in slots)
    return matches, resp["took"]


def run_msearch_mode(
    es: Elasticsearch,
    index: str,
    docs: list[Doc],
    filtered: bool,
    page: int = MAX_WINDOW,
    wrapper: str = "bool",
) -> tuple[set[Match], int]:
    """Mode B: _msearch with one single-document percolate per doc."""
    lines: list[dict[str, Any]] = []
    for d in docs:
        lines += [{}, search_body(percolate_clause(d, filtered, wrapper), page)]
    resp = es.msearch(
        index=index,
        body=lines,
        filter_path="took,responses.error,responses.status,responses.timed_out,"
        "responses._shards,responses.hits.total,responses.hits.hits._id",
    )
    matches: set[Match] = set()
    for slot, (d, item) in enumerate(zip(docs, resp["responses"], strict=True)):
        check_ok(item)
        hits = item["hits"].get("hits", [])
        if item["hits"]["total"]["value"] > len(hits):
            hits = all_hits_paged(es, index, percolate_clause(d, filtered, wrapper), page)
        matches.update((slot, hit_qid(h)) for h in hits)
    return matches, resp["took"]


MODES: dict[str, Callable[..., tuple[set[Match], int]]] = {
    "A batch": lambda es, ix, docs: run_batch_mode(es, ix, docs, filtered=False),
    "A batch+filter": lambda es, ix, docs: run_batch_mode(es, ix, docs, filtered=True),
    "B msearch": lambda es, ix, docs: run_msearch_mode(es, ix, docs, filtered=False),
    "B msearch+filter": lambda es, ix, docs: run_msearch_mode(es, ix, docs, filtered=True),
}


# --------------------------------------------------------------------------
# Correctness checks (run before timing)
# --------------------------------------------------------------------------


def oracle_matches(es: Elasticsearch, docs: list[Doc], queries: list[Doc]) -> set[Match]:
    """Ground truth: index the docs normally and run every stored query as a search."""
    recreate_index(es, ORACLE_INDEX, percolator=False)
    load_index(es, ORACLE_INDEX, docs, ids=[str(i) for i in range(len(docs))])
    matches: set[Match] = set()
    for start in range(0, len(queries), 200):
        chunk = queries[start : start + 200]
        lines: list[dict[str, Any]] = []
        for q in chunk:
            lines += [{}, search_body(q["query"], MAX_WINDOW)]
        resp = es.msearch(index=ORACLE_INDEX, body=lines)
        for q, item in zip(chunk, resp["responses"], strict=True):
            check_ok(item)
            assert item["hits"]["total"]["value"] == len(item["hits"]["hits"])
            matches.update((int(h["_id"]), q["qid"]) for h in item["hits"]["hits"])
    es.indices.delete(index=ORACLE_INDEX)
    return matches


def verify_modes(
    es: Elasticsearch, index: str, docs: list[Doc], queries: list[Doc], with_oracle: bool
) -> int:
    """Assert all variants (and search_after paging) agree; return match count.

    Page sizes are derived from the reference so each paged check takes ~4 pages
    (fixed tiny pages cost thousands of requests at 10000 stored queries).
    """
    reference, _ = run_batch_mode(es, index, docs, filtered=False)
    assert reference, "no matches at all: dataset is useless"
    page_a = max(1, len({qid for _, qid in reference}) // 3)
    page_b = max(1, max(Counter(slot for slot, _ in reference).values()) // 3)
    cs = "constant_score"
    variants = {
        "A filter(bool)": lambda: run_batch_mode(es, index, docs, True),
        "A filter(constant_score)": lambda: run_batch_mode(es, index, docs, True, wrapper=cs),
        f"A paged({page_a})": lambda: run_batch_mode(es, index, docs, False, page=page_a),
        "B": lambda: run_msearch_mode(es, index, docs, False),
        "B filter(bool)": lambda: run_msearch_mode(es, index, docs, True),
        "B filter(constant_score)": lambda: run_msearch_mode(es, index, docs, True, wrapper=cs),
        f"B paged({page_b})": lambda: run_msearch_mode(es, index, docs, False, page=page_b),
    }
    for name, fn in variants.items():
        got, _ = fn()
        assert got == reference, f"{name} differs from A: {len(got ^ reference)} mismatches"
    if with_oracle:
        truth = oracle_matches(es, docs, queries)
        assert truth == reference, f"percolator != search: {len(truth ^ reference)} mismatches"
    log(f"paging checked with pages of {page_a} (A) and {page_b} (B)")
    return len(reference)


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


@dataclass
class CellResult:
    mode: str
    batch: int
    queries: int | None
    latencies: list[float]  # seconds per request, client-side wall clock
    took_ms: list[int]  # server-side "took"
    matches: int

    @property
    def docs_per_s(self) -> float:
        return self.batch * len(self.latencies) / sum(self.latencies)

    def pct(self, p: float) -> float:
        """Nearest-rank percentile in ms."""
        xs = sorted(self.latencies)
        return 1000 * xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


class DocPool:
    """Cycles through a fixed pool so consecutive requests send different docs."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs, self.pos = docs, 0

    def take(self, n: int) -> list[Doc]:
        if self.pos + n > len(self.docs):
            self.pos = 0
        out = self.docs[self.pos : self.pos + n]
        self.pos += n
        return out


def time_cell(
    run: Callable[[list[Doc]], tuple[int, int]],
    pool: DocPool,
    batch: int,
    budget_s: float,
    min_reqs: int,
    max_reqs: int,
) -> tuple[list[float], list[int], int]:
    """One untimed warm-up request, then requests until budget and min_reqs are met."""
    run(pool.take(batch))
    lat: list[float] = []
    took: list[int] = []
    matches = 0
    start = time.perf_counter()
    while len(lat) < max_reqs and (len(lat) < min_reqs or time.perf_counter() - start < budget_s):
        docs = pool.take(batch)
        t0 = time.perf_counter()
        n, server_ms = run(docs)
        lat.append(time.perf_counter() - t0)
        took.append(server_ms)
        matches += n
    return lat, took, matches


def bench_percolate(
    es: Elasticsearch,
    index: str,
    pool: DocPool,
    n_queries: int,
    batch: int,
    mode: str,
    cfg: argparse.Namespace,
) -> CellResult:
    def run(docs: list[Doc]) -> tuple[int, int]:
        m, took = MODES[mode](es, index, docs)
        return len(m), took

    lat, took, matches = time_cell(run, pool, batch, cfg.budget, cfg.min_reqs, cfg.max_reqs)
    return CellResult(mode, batch, n_queries, lat, took, matches)


def bench_bulk(es: Elasticsearch, pool: DocPool, batch: int, cfg: argparse.Namespace) -> CellResult:
    """Raw engine baseline: plain _bulk indexing of the same docs into a normal index."""

    def run(docs: list[Doc]) -> tuple[int, int]:
        lines: list[dict[str, Any]] = []
        for d in docs:
            lines += [{"index": {}}, d]
        resp = es.bulk(index=RAW_INDEX, body=lines, filter_path="took,errors")
        if resp["errors"]:
            raise RuntimeError("bulk indexing reported errors")
        return 0, resp["took"]

    lat, took, _ = time_cell(run, pool, batch, cfg.budget, cfg.min_reqs, cfg.max_reqs)
    return CellResult("raw _bulk index", batch, None, lat, took, 0)


# --------------------------------------------------------------------------
# Probes: filter-context slots and per-document failure behaviour
# --------------------------------------------------------------------------


def probe_filter_slots(es: Elasticsearch, index: str, docs: list[Doc]) -> str:
    out = []
    for wrapper in ("bool", "constant_score"):
        body = search_body(percolate_clause(docs, filtered=True, wrapper=wrapper), MAX_WINDOW)
        hits = es.search(index=index, body=body)["hits"]["hits"]
        ok = bool(hits) and all("_percolator_document_slot" in h.get("fields", {}) for h in hits)
        out.append(f"{wrapper}.filter: slot on {'all' if ok else 'NOT all'} {len(hits)} hits")
    return "; ".join(out)


def probe_bad_doc(es: Elasticsearch, index: str, docs: list[Doc]) -> list[str]:
    """One doc with ``status: {"a": 1}`` (status is a long) in a batch of len(docs)."""
    batch = [dict(d) for d in docs]
    bad = len(batch) // 2
    batch[bad]["status"] = {"a": 1}
    lines = []
    try:
        es.search(index=index, body=search_body(percolate_clause(batch, False), MAX_WINDOW))
        lines.append("A: request succeeded (!)")
    except RequestError as e:
        lines.append(
            f"A: whole request fails, HTTP {e.status_code} {e.error} "
            f"({e.info['error']['root_cause'][0]['type']}); no matches for any of "
            f"the {len(batch)} docs"
        )
    body: list[dict[str, Any]] = []
    for d in batch:
        body += [{}, search_body(percolate_clause(d, False), MAX_WINDOW)]
    resp = es.msearch(index=index, body=body)
    statuses = [r.get("status") for r in resp["responses"]]
    failed = [i for i, r in enumerate(resp["responses"]) if "error" in r]
    cause = resp["responses"][bad].get("error", {}).get("root_cause", [{}])[0].get("type")
    lines.append(
        f"B: _msearch HTTP 200; item statuses {statuses}; failed items {failed} (bad doc was #{bad}: {cause})"
    )
    return lines


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine-url", default="http://127.0.0.1:9250")
    p.add_argument("--quick", action="store_true", help="small matrix, < 60 s (smoke run)")
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.batches, cfg.query_counts = [1, 10, 100], [10, 1000]
        cfg.budget, cfg.min_reqs, cfg.max_reqs = 0.5, 3, 500
        cfg.verify_docs, cfg.warmup_s = 100, 2.0
    else:
        cfg.batches, cfg.query_counts = [1, 10, 50, 100, 250, 500, 1000], [10, 100, 1000, 10000]
        cfg.budget, cfg.min_reqs, cfg.max_reqs = 2.5, 5, 2000
        cfg.verify_docs, cfg.warmup_s = 300, 10.0
    return cfg


def warm_up(es: Elasticsearch, index: str, pool: DocPool, seconds: float) -> None:
    """Let the JIT and caches settle before anything is timed."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for fn in MODES.values():
            fn(es, index, pool.take(50))


def format_table(results: list[CellResult]) -> str:
    head = (
        f"{'mode':<17} {'batch':>5} {'queries':>7} {'reqs':>5} {'docs/s':>9} "
        f"{'mean ms':>9} {'p50 ms':>9} {'p99 ms':>9} {'srv ms':>8} {'match/doc':>9}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        mean = 1000 * sum(r.latencies) / len(r.latencies)
        took = sum(r.took_ms) / len(r.took_ms)
        mpd = r.matches / (r.batch * len(r.latencies)) if r.queries else 0.0
        rows.append(
            f"{r.mode:<17} {r.batch:>5} {r.queries if r.queries else '-':>7} "
            f"{len(r.latencies):>5} {r.docs_per_s:>9.0f} {mean:>9.1f} {r.pct(50):>9.1f} "
            f"{r.pct(99):>9.1f} {took:>8.1f} {mpd:>9.2f}"
        )
    return "\n".join(rows)


def main(argv: Iterable[str] | None = None) -> int:
    cfg = parse_args(argv)
    t_start = time.perf_counter()
    es = Elasticsearch(cfg.engine_url, request_timeout=300)
    info = es.info()
    log(f"engine {info['version']['number']} at {cfg.engine_url}; quick={cfg.quick}")

    ds = make_dataset()
    docs = [ds.doc(i) for i in range(5000)]
    all_queries = make_queries(ds, max(cfg.query_counts))
    pool = DocPool(docs)
    verify_docs = docs[-cfg.verify_docs :]  # also used by probes

    results: list[CellResult] = []
    findings: list[str] = []
    for n_queries in cfg.query_counts:
        index = f"{PERC_PREFIX}{n_queries}"
        log(f"loading {n_queries} stored queries into {index}")
        recreate_index(es, index, percolator=True)
        queries = all_queries[:n_queries]
        load_index(es, index, queries, ids=[q["qid"] for q in queries])  # _id == qid

        n = verify_modes(es, index, verify_docs, queries, with_oracle=n_queries <= 1000)
        log(
            f"verified: all variants agree on {n} matches over {len(verify_docs)} docs"
            + (" (and equal forward search)" if n_queries <= 1000 else "")
        )
        if n_queries == cfg.query_counts[-1]:
            slots = probe_filter_slots(es, index, verify_docs[:50])
            findings.append(f"filter context, 50 docs x {n_queries} queries: {slots}")
            findings += [
                f"one bad doc in a batch of 10 ({n_queries} queries): {s}"
                for s in probe_bad_doc(es, index, verify_docs[:10])
            ]
        if n_queries == cfg.query_counts[0]:
            log(f"warm-up {cfg.warmup_s:.0f}s")
            warm_up(es, index, pool, cfg.warmup_s)

        for batch in cfg.batches:
            for mode in MODES:
                r = bench_percolate(es, index, pool, n_queries, batch, mode, cfg)
                results.append(r)
                log(
                    f"{mode:<17} batch={batch:<5} queries={n_queries:<6} "
                    f"{r.docs_per_s:9.0f} docs/s ({len(r.latencies)} reqs)"
                )
        es.indices.delete(index=index)

    log("raw _bulk baseline")
    recreate_index(es, RAW_INDEX, percolator=False)
    for batch in cfg.batches:
        r = bench_bulk(es, pool, batch, cfg)
        results.append(r)
        log(f"raw _bulk batch={batch:<5} {r.docs_per_s:9.0f} docs/s ({len(r.latencies)} reqs)")
    es.indices.delete(index=RAW_INDEX)

    print(format_table(results))
    print(
        "(latencies are client wall clock per request; srv ms = engine 'took'; "
        "with < 100 reqs p99 is the max)"
    )
    print()
    print(
        f"max size per page = index.max_result_window = {MAX_WINDOW} (from+size); beyond it: "
        f"search_after sorted on qid (keyword), exercised in verification (~4 pages each)"
    )
    for f in findings:
        print(f)
    print(f"total wall time {time.perf_counter() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
