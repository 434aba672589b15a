"""The compare benchmark's printed report: the table of runs, the fan-out rows, the goals, the legend."""

from __future__ import annotations

import os
import time
from typing import Any

from bench.compare.runs import ACTIVE_FEW, Bench, Run, find
from devstack.settings import engine_dist


def _f(value: float | None, width: int, fmt: str = ".0f") -> str:
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def delivery_text(run: Run) -> str:
    d = run.delivery
    if "wamp" not in d:
        text = "ok" if d.get("ok") else f"MISMATCH {run.hits}/{run.expected_hits}"
        return text + (f"; {run.note}" if run.note else "")
    w, t = d["wamp"], d["tails"]
    text = f"{w['sids_ok']} ok, {w['missing']} missing"
    if w["extra"]:
        text += f", {w['extra']} dup"
    if t["sids_ok"] or t["missing"]:
        text += f"; tails {t['sids_ok']} ok, {t['missing']} missing"
    if d["retries"]:
        text += (
            f"; {d['retries']} retried ("
            + ", ".join(f"{n}x {c or 'no answer'}" for c, n in d["retried_on"].items())
            + ")"
        )
    if d["errors"]:
        text += f"; ERRORS {d['errors'][0]}"
    return text + (f"; {run.note}" if run.note else "")


SECTION_NAMES = {
    "engine": "1 engine ceiling",
    "router": "2 router ceiling",
    "e2e-max": "3 estrom max",
    "e2e-half": "3 estrom @ half max",
    "scaling": "5 N stored, 100 subscribed",
}


def format_table(runs: list[Run]) -> str:
    head = (
        f"{'section':<27} {'N':>6} {'per s':>7} {'x ceil':>6} {'events/s':>8} "
        f"{'p50':>6} {'p95':>6} {'p99':>6} {'tail p99':>8} {'beat us':>7} {'tail us':>7} "
        f"{'stack us':>8} {'x CPU':>5} {'CPU% b/t/r/e/c/o':>20}  delivery"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        value = r.events_per_s if r.section == "router" else r.docs_per_s
        cpu = "/".join(
            f"{r.cpu_pct.get(n, 0):.0f}" for n in ("beater", "tailor", "router", "engine", "client", "other")
        )
        lines.append(
            f"{SECTION_NAMES[r.section]:<27} {r.queries or '-':>6} {_f(value, 7)} {_f(r.ratio, 6, '.2f')} "
            f"{_f(r.events_per_s if r.section != 'router' else None, 8)} "
            f"{_f(r.latency_ms.get('p50'), 6)} {_f(r.latency_ms.get('p95'), 6)} "
            f"{_f(r.latency_ms.get('p99'), 6)} {_f(r.tail_latency_ms.get('p99'), 8)} "
            f"{_f(r.cpu_us_per_doc.get('beater'), 7)} {_f(r.cpu_us_per_doc.get('tailor'), 7)} "
            f"{_f(r.stack_us_per_doc, 8)} {_f(r.cpu_ratio, 5, '.1f')} {cpu:>20}  {delivery_text(r)}"
        )
    return "\n".join(lines)


def format_fanout(result: dict[str, Any] | None) -> str:
    if result is None:
        return "fan-out: skipped (bench/fanout.py absent or failed; see stderr)"
    head = f"{'4 fan-out clients':<27} {'sent/s':>8} {'deliv/s':>8} {'complete':>8} {'tailor us/hit':>13} {'RSS KiB':>8} {'KiB/idle client':>15}"
    lines = [head, "-" * len(head)]
    for row in result.get("rows", []):
        lines.append(
            f"{row['clients']:<27} {row['hits_per_s_sent']:>8.0f} {row['hits_per_s_delivered']:>8.0f} "
            f"{'yes' if row['complete'] else 'NO':>8} {1e6 * row['tailor_cpu_s_per_hit']:>13.0f} "
            f"{row['tailor_rss_kib']:>8} {row['rss_per_idle_client_kib']:>15.1f}"
        )
    return "\n".join(lines)


def goals(runs: list[Run], fan: dict[str, Any] | None, target_n: int) -> list[dict[str, Any]]:
    """The four goals (docs/performance.md), each met / missed / not measured, with the numbers."""
    out: list[dict[str, Any]] = []

    def goal(name: str, met: bool | None, text: str) -> None:
        out.append({"goal": name, "met": met, "figures": text})

    def ratio_goal(name: str, run: Run | None, minimum: float) -> None:
        if run is None or run.ratio is None or run.ceiling is None:
            goal(name, None, "not measured")
        else:
            figures = f"{run.docs_per_s:.0f} / {run.ceiling:.0f} docs/s = {run.ratio:.2f}"
            goal(name, run.ratio >= minimum, figures)

    ratio_goal(f"throughput >= 0.8 x engine at N={target_n}", find(runs, "e2e-max", target_n), 0.8)
    half = find(runs, "e2e-half", target_n)
    p99 = half.latency_ms.get("p99") if half else None
    if half is not None and p99 is not None:
        goal(
            "p99 <= 50 ms at half max",
            p99 <= 50,
            f"p99 {p99:.1f} ms at {half.docs_per_s:.0f} docs/s, N={target_n}",
        )
    else:
        goal("p99 <= 50 ms at half max", None, "not measured")
    row = next((r for r in (fan or {}).get("rows", []) if r["clients"] == 1000), None)
    if row is not None:
        # "complete" is fanout.py's verdict that every client got every hit sent
        met = row["complete"] and row["hits_per_s_sent"] >= 95 and row["rss_per_idle_client_kib"] < 50
        goal(
            "1,000 tails, every hit at 100 hits/s, < 50 KiB/idle client",
            met,
            f"sent {row['hits_per_s_sent']:.0f}/s, delivered {row['hits_per_s_delivered']:.0f}/s, "
            f"complete {row['complete']}, {row['rss_per_idle_client_kib']:.1f} KiB/idle client",
        )
    else:
        goal(
            "1,000 tails, every hit at 100 hits/s, < 50 KiB/idle client",
            None,
            "not measured (no fan-out rows)",
        )
    scaling = next((r for r in runs if r.section == "scaling"), None)
    stored = scaling.queries if scaling else max(target_n, ACTIVE_FEW)
    ratio_goal(f"N={stored} with {ACTIVE_FEW} active >= 0.9 x N={ACTIVE_FEW}", scaling, 0.9)
    return out


LEGEND = """\
per s      docs/s (router: events/s, one hit each); x ceil: ratio to the ceiling of the same run and N
           (estrom rows: the engine ceiling, measured just before and just after estrom max;
           section 5: estrom max at N=100)
events/s   WAMP events the subscribers received (the beater publishes one per sid per batch)
p50..p99   ms from a document's POST to its hit reaching the WAMP subscriber; tail p99: to the
           NDJSON tail through the tailor (a sample of sids)
beat/tail us  CPU microseconds per document of the beater and of the tailor (CPU s per doc x 1e6)
stack us   CPU microseconds per document of engine + router + beater + tailor (engine ceiling: the
           engine's alone); x CPU: that over the engine ceiling's (section 5: over N=100 estrom max):
           unlike docs/s, it does not depend on how much of the machine others took meanwhile
CPU%       % of one core during the run (200 = both cores): b(eater) t(ailor) r(outer) e(ngine)
           c(lient: this process: senders, subscribers, tails, Python ES client) o(ther: the rest of
           the shared machine)
delivery   sids whose subscriber got exactly the expected hits, hits missing, duplicates (after a
           retry); tails: the same for the tailor's streams; engine: matches == expected"""


def report(b: Bench, fan: dict[str, Any] | None, goal_list: list[dict[str, Any]], started: float) -> str:
    reg = "; ".join(
        f"N={r['queries']}: {r['over_wamp']} over WAMP at {r['wamp_per_s']:.1f}/s"
        + (f" + {r['seeded']} seeded" if r["seeded"] else "")
        + "".join(f", {k[:-8]} RSS {v / 1024:.0f} MiB" for k, v in r.items() if k.endswith("_rss_kib"))
        for r in b.registration
    )
    cfg = b.cfg
    lines = [
        format_table(b.runs),
        "",
        format_fanout(fan),
        "",
        "goals:",
        *(
            f"  {'MET   ' if g['met'] else 'missed' if g['met'] is False else 'n/a   '} {g['goal']}: {g['figures']}"
            for g in goal_list
        ),
        "",
        LEGEND,
        "",
        f"B={cfg.batch} docs per POST, C={cfg.senders} in flight (engine ceiling: C threads), "
        f"1/{cfg.every} of the documents match one query; runs of {cfg.run_s:.0f}s, ceilings {cfg.ceiling_s:.0f}s",
        f"registration: {reg}",
        f"engine {engine_dist()}, {cfg.engine_nodes} node(s)"
        + (f" (percolator index {cfg.engine_nodes} shards, 1 replica)" if cfg.engine_nodes > 1 else "")
        + f"; load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min) at the end",
        f"sweep interval {cfg.sweep_interval:.0f}s"
        + (f"; beater settings {' '.join(cfg.beater_env)}" if cfg.beater_env else "")
        + f"; machine: {os.cpu_count()} cores, shared; "
        f"total wall time {time.perf_counter() - started:.0f}s",
    ]
    return "\n".join(lines)
