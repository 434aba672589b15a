"""``estrom queries``: the registered queries, with their subscribers.

Queries live in Elasticsearch (``<prefix><index>``, document id = sid). How
many subscribe to each comes from the router's meta API
(``wamp.subscription.lookup`` / ``count_subscribers`` on ``docs-for-<sid>``),
which anonymous sessions may not call: it needs a principal that may, the
``admin`` one (``ESTROM_ADMIN_SECRET``) or the beater's. Without a secret the
column shows ``-``. Match counts are not shown: estrom keeps no per-query
counter (the beater's ``/metrics`` has only the total of deliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.parse
from typing import Any, TextIO

from common.contract import SID_PATTERN, topic_for
from common.partitions import router_urls
from estrom_cli._http import CliError, connect, error_reason

QUERY_SIZE = 10_000
ROUTER_TIMEOUT = 15.0


def stored_queries(
    engine: str, prefix: str, index: str | None, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """``{"sid", "index", "query", "active", "registered_at"}`` of every stored query, oldest first."""
    pattern = prefix + (index if index else "*")
    params = urllib.parse.urlencode({"ignore_unavailable": "true", "allow_no_indices": "true"})
    body = {
        "size": QUERY_SIZE,
        "_source": ["estrom_meta", "estrom_active"],
        "query": {"match_all": {}},
        "sort": [{"estrom_meta.registered_at": {"order": "asc", "unmapped_type": "double"}}],
    }
    # ESTROM_ENGINE_URL may list several nodes of one cluster: any one answers for all.
    engine = engine.split(",", 1)[0].strip()
    conn, base = connect(engine, timeout)
    try:
        conn.request(
            "POST",
            f"{base}/{urllib.parse.quote(pattern)}/_search?{params}",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        raw = response.read()
    except OSError as exc:
        raise CliError(f"cannot reach Elasticsearch at {engine}: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise CliError(f"Elasticsearch refused the search: {error_reason(response.status, raw)}")
    out = []
    for hit in json.loads(raw)["hits"]["hits"]:
        source = hit.get("_source", {})
        meta = source.get("estrom_meta", {})
        out.append(
            {
                "sid": hit["_id"],
                "index": meta.get("index", hit["_index"][len(prefix) :]),
                "query": meta.get("query"),
                "active": source.get("estrom_active", True),
                "registered_at": meta.get("registered_at"),
            }
        )
    return out


def subscriber_counts(router: str, realm: str, authid: str, secret: str, sids: list[str]) -> dict[str, int]:
    """Subscribers of ``docs-for-<sid>`` per sid, from the router's meta API (WAMP-CRA session)."""
    import txaio

    txaio.use_asyncio()
    # Set on the module by txaio.use_asyncio()/use_twisted() at run time: not in txaio's annotations.
    txaio.set_global_log_level("critical")  # type: ignore[attr-defined]  # the command prints its own one-line errors
    from autobahn.asyncio.component import Component

    async def ask() -> dict[str, int]:
        loop = asyncio.get_running_loop()
        # autobahn's retry timer can fail on a component already stopped; the
        # command reports the outcome itself, as one line.
        loop.set_exception_handler(lambda _loop, _context: None)
        answer: asyncio.Future[dict[str, int]] = loop.create_future()
        component = Component(
            transports=[{"type": "websocket", "url": router, "max_retries": 0, "serializers": ["json"]}],
            realm=realm,
            authentication={"wampcra": {"authid": authid, "secret": secret}},
        )

        async def on_join(session: Any, _details: Any) -> None:
            counts: dict[str, int] = {}
            try:
                for sid in sids:
                    sub = await session.call("wamp.subscription.lookup", topic_for(sid))
                    counts[sid] = (
                        0
                        if sub is None
                        else int(await session.call("wamp.subscription.count_subscribers", sub))
                    )
            except Exception as exc:
                if not answer.done():
                    answer.set_exception(CliError(f"the router's meta API refused: {exc}"))
            else:
                if not answer.done():
                    answer.set_result(counts)

        def on_leave(_session: Any, details: Any) -> None:
            if not answer.done():
                answer.set_exception(CliError(f"the router refused {authid!r}: {details.reason}"))

        component.on("join", on_join)
        component.on("leave", on_leave)
        done = component.start(loop)

        def ended(f: asyncio.Future[Any]) -> None:
            if not answer.done():
                answer.set_exception(CliError(f"cannot reach the router at {router}: {f.exception()}"))

        done.add_done_callback(ended)
        try:
            return await asyncio.wait_for(answer, ROUTER_TIMEOUT)
        except TimeoutError:
            raise CliError(f"the router at {router} did not answer within {ROUTER_TIMEOUT:g} s") from None
        finally:
            # Leave properly and let the session finish, so nothing is
            # cancelled half-way (which autobahn would print as tracebacks).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.ensure_future(component.stop()), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(done, 5)

    return asyncio.run(ask())


def match_counts(beaters: list[str]) -> dict[str, int] | None:
    """Per-sid hits published, summed over the beaters' ``/metrics``; None if none answered.

    The counters live in each beater process since its start, so the sum is
    "since the running beaters started", not all time.
    """
    counts: dict[str, int] = {}
    answered = False
    for base in beaters:
        try:
            conn, path = connect(base, 5.0)
            conn.request("GET", path + "/metrics")
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            conn.close()
        except (OSError, CliError):
            continue
        if resp.status != 200:
            continue
        answered = True
        for line in text.splitlines():
            m = _MATCHES.match(line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + int(float(m.group(2)))
    return counts if answered else None


_MATCHES = re.compile(rf'^estrom_beater_query_matches_total\{{sid="({SID_PATTERN})"\}} (\S+)$')


def run_queries(
    engine: str,
    prefix: str,
    index: str | None,
    router: str,
    realm: str,
    authid: str,
    secret: str,
    *,
    beaters: list[str],
    as_json: bool,
    out: TextIO,
) -> int:
    queries = stored_queries(engine, prefix, index)
    matches = match_counts(beaters)
    for q in queries:
        q["matches"] = matches.get(q["sid"], 0) if matches is not None else None
    counts: dict[str, int] | None = None
    if secret and queries:
        sids = [q["sid"] for q in queries]
        counts = {}
        for url in router_urls(router):  # every router node: each holds its partition's subscribers
            for sid, n in subscriber_counts(url, realm, authid, secret, sids).items():
                counts[sid] = counts.get(sid, 0) + n
    for q in queries:
        q["subscribers"] = counts.get(q["sid"]) if counts is not None else None
    if as_json:
        for q in queries:
            out.write(json.dumps(q) + "\n")
        return 0
    notes = [
        "matches: hits published since the beaters started (" + ", ".join(beaters) + ")"
        if matches is not None
        else "matches: '-' = unknown (no beater answered at " + ", ".join(beaters) + ")"
    ]
    if counts is None and queries:
        notes.insert(0, "subscribers: '-' = unknown; pass --secret (the router's meta API needs a login)")
    out.write(f"# {len(queries)} queries; " + "; ".join(notes) + "\n")
    rows = [("SID", "INDEX", "ACTIVE", "SUBSCRIBERS", "MATCHES", "QUERY")]
    for q in queries:
        subs = "-" if q["subscribers"] is None else str(q["subscribers"])
        hits = "-" if q["matches"] is None else str(q["matches"])
        query = q["query"] if isinstance(q["query"], str) else json.dumps(q["query"], separators=(",", ":"))
        rows.append((q["sid"], q["index"], "yes" if q["active"] else "no", subs, hits, query))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5] + "\n")
    out.flush()
    return 0
