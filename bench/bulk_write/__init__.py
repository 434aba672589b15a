"""Bulk writes through estrom against the same bulk writes straight to the engine, in one run.

``python -m bench.bulk_write [--engine-url URL] [--modes plain,filter,pipeline] [--requests N]
[--docs D] [--block B] [--no-drain] [--big-mb MB]`` (``scripts/bench bulk ...``)

Starts a router, a beater and a tailor on free ports (and an engine, unless
``--engine-url`` names one), and for each mode two indices of the same
shape, one written straight to the engine (direct), one through the
beater's ``/_bulk`` (through), with one live tail per mode on its through
index matching a tenth of the documents. The modes are the ways shippers
write:

- ``plain``: ``POST /_bulk``;
- ``filter``: ``POST /_bulk?filter_path=errors,items.*.error,items.*.status``,
  what Logstash and libbeat (Filebeat) send: the beater asks the engine
  for the whole answer and filters it itself;
- ``pipeline``: ``POST /_bulk?pipeline=<p>``, an ingest pipeline of a
  ``set`` and a ``remove`` created on the engine first (both sides use it):
  the beater reads the stored documents back (``_mget``) and publishes
  those; the tail of this mode matches only documents as stored (the field
  the pipeline sets) and counts those without the field it removes.
  Skipped, with the reason, on an engine without those processors.

The ``N`` requests per side and mode go in blocks: each mode in turn sends
``B`` bulks of ``D`` documents direct, then ``B`` through, over one
persistent connection per side and mode (as a shipper keeps one), so all
sides see the same machine within seconds of each other. After each block
through, the run waits until the beater's queue is empty (every stored
document percolated and published): the next block direct then runs on an
engine free of estrom's work, and that wait is charged to the through side
as the part of its percolation its own requests did not overlap.
``--no-drain`` leaves the wait out (with ``--block 1``: strict alternation,
as this benchmark did first): each block's percolation then runs during the
next block direct, which it slows, and the ratio flatters estrom.

Prints per mode the throughput of each side, through both as the shipper
sees it (answered) and including the wait (published), their ratios to
direct (the goal is 0.8 or better: printed, never asserted), the latency per
request (p50, p99) and the extra latency estrom adds (paired, through -
direct), the hits each tail received of those expected and what the beater
could not publish; for the pipeline mode, what the read-back costs per
document. ``--big-mb`` then sends one large bulk through and prints the
beater's resident memory before and after.

The parts: ``bulk_requests`` (the bodies and the shipper's connection),
``engine_api``, ``meters`` (the beater's queue and metrics, every part's CPU),
``modes`` (indices, pipeline and tail per mode), ``blocks`` (sending them),
``report``, ``big_bulk``, and ``__main__`` (options, the stack, the order of it all).
"""
