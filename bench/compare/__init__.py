"""What estrom delivers, as a fraction of its ceilings, measured in one run.

Why this exists
---------------
estrom's ceiling on a machine is the engine's batch-percolation speed and the
router's publish speed; HTTP parsing, JSON, batching, WAMP and the tailor's
fan-out should cost little on top. This benchmark starts one engine, one router,
one beater and one tailor on free loopback ports and, in the same run:

1. engine ceiling: the beater's own percolate request (a ``documents`` array
   of B documents) sent straight to Elasticsearch, C in flight, per N;
2. router ceiling: autobahn publish (acknowledged, as the beater does) to an
   autobahn subscriber through the same crossbar router, events/s;
3. estrom end to end: a Logstash-like sender (``json_batch``, B documents per
   POST, C in flight, retrying 429/5xx) POSTs to the beater; WAMP subscribers
   on every sid and NDJSON tails through the tailor on a sample of sids
   receive the hits. Once at the most the sender gets through (closed loop),
   once paced at half that. N = 100, 1,000, 10,000 stored queries (see
   ``bench/workload.py``: a known tenth of the documents matches one query
   each, so every sid's expected hit count is known and checked);
4. fan-out: ``bench/fanout.py`` as a child process (its own stack), if present;
5. query-count scaling: the largest N stored, all but 100 unsubscribed; once
   the lifecycle sweep has deactivated the rest (counted in the engine), the
   end-to-end run again, against the N = 100 run.

Every estrom figure is printed with its ratio to the ceiling from this run,
with the CPU time per document of beater and tailor, and a goals line.
Everything shares this machine's cores (and on a shared box, other work):
figures are for comparison within the run. Nothing is asserted on time.

Usage::

    scripts/bench compare [--quick] [--queries 100,1000,10000] [--json PATH]

Progress goes to stderr, the table to stdout, the figures as JSON to
``--json`` (default: in the work directory's parent, printed at the end).

The parts: ``runs`` (the figures of one run, what sections share),
``queries`` (subscribing, registering, seeding), ``ceilings`` (sections 1
and 2), ``end_to_end`` (sections 3 and 5), ``warm_up``, ``fanout_child``
(section 4), ``report``, and ``__main__`` (options and the order of it all).
"""
