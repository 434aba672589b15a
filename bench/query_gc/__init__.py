"""Benchmark: ingest cost while the beater's query lifecycle collects 10,000 abandoned queries.

Why this exists
---------------
Every registered query is percolated against every ingested document, so a
percolator that only grows makes every ingest slower. ``beater/queries/lifecycle.py``
stops percolating queries nobody subscribes to (deactivation, one sweep
after registration) and deletes them after ``ESTROM_QUERY_GRACE`` seconds
(collection). This benchmark shows what that buys and what it costs while it
happens: the sweep rewrites, then deletes, thousands of percolator documents
with ``refresh=true`` in the same engine that serves the ingest load.

What it does, on real processes it starts itself (one engine with a 1g heap,
one router, ONE beater with ``ESTROM_QUERY_GRACE=20`` and
``ESTROM_QUERY_SWEEP_INTERVAL=2`` by default, all on free loopback ports):

1. baseline: a fresh index with only the 100 "live" queries (registered and
   subscribed), under the ingest load: what "flat" should look like;
2. on the experiment's index: register the 100 live queries and subscribe to
   them, then 10,000 "abandoned" ones (seeded log-alert queries, never
   subscribed). The first few hundred go through ``register_query``,
   concurrently in batches; the rest are written straight into the percolator
   index with ``_bulk``, as the documents registration writes (checked against
   one the beater wrote, sids from ``common.query.identity``): every registration
   refreshes the percolator index (``refresh=true``), which holds the RPC to
   ~15 registrations/s on a 2-core box, 11 minutes for 10,000
   (``--all-over-wamp`` to do it anyway);
3. under the ingest load, keep all 10,100 active for a while. From the start
   of the run, a prefix subscription on ``docs-for-`` itself (it covers every
   sid, so every sweep leaves all queries alone; its handler drops the hits it
   receives) holds them. Without it, queries would be deactivated in the order
   they were registered, before the experiment starts;
4. drop that subscription: the next sweep deactivates the 10,000, the one
   after the grace period deletes them; keep loading until a while after;
5. the baseline once more, to see drift over the run.

Throughout, one or two HTTP senders POST JSON arrays of 250 documents to the
beater back to back (closed loop), and every ~2 s a timeline row is printed:
the phase, read from the engine (``_count`` of ``estrom-queries-<index>``,
in total and with ``estrom_active: true``) and from the beater's lifecycle
counters (/metrics), never inferred from the clock; ingest throughput, request
latency and what the beater published per document; and the hits per document
the live subscriber received, which must not change when abandoned queries go.

Engine, router, beater, senders and subscriber share this machine's cores:
the figures are for comparison within the run. Nothing is asserted on time.

Usage::

    scripts/bench gc [--quick] [--keep]    (or: .venv/bin/python -m bench.query_gc)

Progress goes to stderr, the figures to stdout; a full run also writes them
to ``bench/results-query-gc-<date>.txt``.

The parts: ``log_data`` (the documents and the queries), ``queries``
(registering, seeding, subscribing, holding the sweeps), ``load`` (the
senders), ``timeline`` (a row per window, its phase read from the engine and
the beater), ``experiment`` (the steps above), ``report``, and ``__main__``
(options and the order of it all).
"""
