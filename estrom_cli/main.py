"""Argument parsing for ``estrom tail | counts | post | queries``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from common.config import CliSettings
from estrom_cli._http import CliError, say
from estrom_cli.counts import CountAsk, run_counts
from estrom_cli.post import run_post
from estrom_cli.queries import run_queries
from estrom_cli.readers import run_readers_add
from estrom_cli.tail import TailAsk, run_tail, stdout_wants_color

TAIL_EXAMPLES = """\
examples:
  estrom tail -i logs 'level:error'                  follow errors in index logs
  estrom tail -i logs -n 20 'service:api'            the last 20 stored matches, then live ones
  estrom tail -i logs --json 'level:error' | jq .    raw hits, one JSON object per line
  estrom tail -i logs --fields host,level 'boom'     choose the columns (only they are sent)
  estrom tail -i logs --delay 5s 'level:error'       in @timestamp order; a late hit marked "late"
  estrom tail -i logs --max-rate 100 '*'             at most 100 hits/s, sampled seconds on stderr
  estrom tail -i logs --limit 5 '{"match": {"level": "error"}}'
  estrom tail --sid 3f2a9c0d1e4b5a67                 a query registered elsewhere

Ends with exit code 0 on Ctrl-C or when the stream ends (--limit); 1 when the
tailor cannot be reached or refuses the query (its reason is printed).
With --max-rate, each second the tailor sampled says so on stderr,
"sampled: <sent> of <matched> in <second>" (with --json: a line
{"sampled": {"t": ..., "matched": n, "sent": k}} among the hits).
"""

POST_EXAMPLES = """\
examples:
  estrom post logs events.ndjson                     one JSON object per line
  estrom post logs events.json                       a JSON array of objects
  generate-events | estrom post logs -               from standard input
  estrom post logs big.ndjson --batch 1000 --token "$ESTROM_INGEST_TOKEN"

Prints the totals (accepted, published, rejected with their line or item
number). 429 and 503 are retried after Retry-After with exponential back-off
(1 s doubling to 64 s), as Logstash's http output does.
"""

COUNTS_EXAMPLES = """\
examples:
  estrom counts -i logs --by service 'level:error'   errors per second, by service
  estrom counts -i logs --every 10 --since 5m 'boom' the last 5 minutes, then live, per 10 s
  estrom counts -i logs --delay 5s --by service '*'  by @timestamp, late hits in their own window
  estrom counts -i logs --by http.status '*' | cat   one line per window (as when piped)
  estrom counts -i logs --json --by host 'x'         the tailor's frames, one JSON per line

On a terminal the table is redrawn in place each window; piped, each window
is one line: <window start> total=<n> <value>=<n> ... (_other: the rest,
_missing: hits without the field). With --delay, a window that late hits
changed comes again, its line ending in (revised).
"""

QUERIES_EXAMPLES = """\
examples:
  estrom queries                                     every registered query
  estrom queries -i logs --json                      one JSON object per query
  ESTROM_ADMIN_SECRET=... estrom queries             with subscriber counts

Subscriber counts come from the router's meta API, which needs a login
(--authid/--secret; the admin principal, or the beater's). Match counts are
the hits each beater published per query since it started, read from the
beaters' /metrics (--beater, repeat it for every beater).
"""


def _add_from_env(
    parser: argparse.ArgumentParser, option: str, default: str, variable: str, what: str
) -> None:
    """An option whose default ``CliSettings`` read from ``variable``, shown in its help."""
    parser.add_argument(option, default=default, help=f"{what} (env {variable}; default %(default)s)")


def _add_stream_options(parser: argparse.ArgumentParser, cli: CliSettings, *, verb: str) -> None:
    """What ``tail`` and ``counts`` share: the query, where it reads, the tailor and the token."""
    parser.add_argument("query", nargs="?", help="Lucene query string, or query DSL as JSON ({...})")
    parser.add_argument("-i", "--index", help=f"the read target to {verb} (index, list, pattern, alias)")
    parser.add_argument("-s", "--sid", help=f"{verb} a registered query by its sid instead of -i/QUERY")
    _add_from_env(parser, "--tailor", cli.tailor_url, "ESTROM_TAILOR_URL", "tailor base URL")
    parser.add_argument("--token", default=cli.token, help="reader token (env ESTROM_TOKEN); none: anonymous")


def build_parser(cli: CliSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="estrom",
        description="Live, filtered tail for JSON document streams: tail, count, post, list queries.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{tail,counts,post,queries,readers,writers}"
    )
    raw = argparse.RawDescriptionHelpFormatter

    tail = sub.add_parser(
        "tail", help="follow the documents matching a query", epilog=TAIL_EXAMPLES, formatter_class=raw
    )
    _add_stream_options(tail, cli, verb="follow")
    tail.add_argument(
        "-n", type=int, default=0, metavar="K", help="first the last K stored matches (backfill)"
    )
    tail.add_argument("--limit", type=int, default=0, help="end after this many hits")
    tail.add_argument("--json", action="store_true", help="print each hit as one JSON line (NDJSON)")
    tail.add_argument(
        "--fields",
        help="comma-separated fields to show (dotted paths, * patterns); the tailor sends only these "
        "(and @timestamp and message, which each line shows; with --json exactly these)",
    )
    tail.add_argument(
        "--delay",
        metavar="DURATION",
        help="hold hits this long (500ms, 5s; at most the tailor's limit, 10s by default) and print "
        "them in @timestamp order; a hit older than one already printed is marked late",
    )
    tail.add_argument("--order-by", metavar="FIELD", help="with --delay: order by this field, not @timestamp")
    tail.add_argument(
        "--max-rate",
        type=int,
        metavar="N",
        help="at most N hits per second: above it the tailor samples, and says so each second",
    )
    tail.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    tail.add_argument("-q", "--quiet", action="store_true", help="no 'following <sid>' line on stderr")

    counts = sub.add_parser(
        "counts", help="live counts of a query per window", epilog=COUNTS_EXAMPLES, formatter_class=raw
    )
    _add_stream_options(counts, cli, verb="count")
    counts.add_argument("--by", help="count the top values of this field (dotted paths for nested ones)")
    counts.add_argument("-k", type=int, help="how many top values (default: the tailor's)")
    counts.add_argument("--every", type=float, help="window length in seconds (default: the tailor's)")
    counts.add_argument("--since", help="first the windows of this past period (90s, 5m, 1h)")
    counts.add_argument(
        "--delay",
        metavar="DURATION",
        help="count by @timestamp, each window sent this long after its end (2s; at most the tailor's "
        "limit, 10s by default); a hit later than that sends its window again, marked (revised)",
    )
    counts.add_argument("--limit", type=int, default=0, help="end after this many windows")
    counts.add_argument("--json", action="store_true", help="print each frame as one JSON line")
    counts.add_argument("-q", "--quiet", action="store_true", help="no 'counting <sid>' line on stderr")

    post = sub.add_parser(
        "post", help="send NDJSON or a JSON array to the beater", epilog=POST_EXAMPLES, formatter_class=raw
    )
    post.add_argument("index", help="the document index to ingest into")
    post.add_argument(
        "file", nargs="?", default="-", help="NDJSON or JSON array file; - (default) reads stdin"
    )
    post.add_argument(
        "--batch", type=int, default=cli.post_batch, help="documents per request (default %(default)s)"
    )
    post.add_argument(
        "--max-retries",
        type=int,
        default=cli.post_max_retries,
        help="retries per batch on 429/503 (default %(default)s)",
    )
    _add_from_env(post, "--beater", cli.beater_url, "ESTROM_BEATER_URL", "beater base URL")
    post.add_argument("--token", default=cli.ingest_token, help="ingest token (env ESTROM_INGEST_TOKEN)")

    queries = sub.add_parser(
        "queries",
        help="list registered queries and their subscribers",
        epilog=QUERIES_EXAMPLES,
        formatter_class=raw,
    )
    queries.add_argument("-i", "--index", help="only the queries of this index")
    queries.add_argument("--json", action="store_true", help="one JSON object per query")
    _add_from_env(queries, "--engine", cli.engine_url, "ESTROM_ENGINE_URL", "Elasticsearch URL")
    _add_from_env(
        queries, "--prefix", cli.query_index_prefix, "ESTROM_QUERY_INDEX_PREFIX", "percolator index prefix"
    )
    _add_from_env(
        queries,
        "--router",
        cli.router_url,
        "ESTROM_ROUTER_URL",
        "router WebSocket URL (several nodes: comma-separated)",
    )
    _add_from_env(queries, "--realm", cli.realm, "ESTROM_REALM", "WAMP realm")
    queries.add_argument(
        "--beater",
        action="append",
        help=f"beater URL for match counts; repeat for several (env ESTROM_BEATER_URL; default {cli.beater_url})",
    )
    queries.add_argument(
        "--authid", default=cli.admin_authid, help="WAMP-CRA authid for the meta API (default %(default)s)"
    )
    queries.add_argument(
        "--secret",
        default=cli.admin_secret,
        help="WAMP-CRA secret of --authid (env ESTROM_ADMIN_SECRET); without it no subscriber counts",
    )
    for kind, role, example in (
        ("readers", "reader's name (its WAMP authid)", "ops --targets 'logs-*' 'metrics-*'"),
        ("writers", "writer's name (Basic/ApiKey user name)", "shipper --targets 'logs-*'"),
    ):
        group = sub.add_parser(kind, help=f"manage the {kind} of the access file (ESTROM_ACCESS)")
        group_sub = group.add_subparsers(dest=f"{kind}_command", required=True, metavar="{add}")
        add = group_sub.add_parser(
            "add",
            help=f"add a {kind[:-1]}: prints its new token once, stores only its SHA-256",
            epilog=f"example:\n  TOKEN=$(estrom {kind} add {example})",
            formatter_class=raw,
        )
        add.add_argument("name", help=f"the {role}")
        add.add_argument(
            "--targets", nargs="+", required=True, help="targets it may use: patterns, lists, -exclusions"
        )
        add.add_argument(
            "--file",
            default=cli.access_file,
            help="the access file (env ESTROM_ACCESS, or ESTROM_READERS)",
        )
    return parser


def _check_stream_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``tail`` and ``counts`` read either a sid or a target and a query."""
    if args.sid and (args.index or args.query):
        parser.error(f"{args.command}: give either --sid or -i INDEX QUERY, not both")
    if not args.sid and not (args.index and args.query):
        parser.error(f"{args.command}: needs -i INDEX and a QUERY (or --sid SID)")


def _tail_ask(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TailAsk:
    """What ``tail``'s options ask the tailor, checked as far as the command can (the tailor says
    the rest: a delay over its limit, a field name it refuses)."""
    if args.order_by and not args.delay:
        parser.error("tail: --order-by orders the hits --delay holds: give --delay too")
    if args.max_rate is not None and args.max_rate < 1:
        parser.error("tail: --max-rate must be at least 1 hit per second")
    fields = tuple(f.strip() for f in args.fields.split(",") if f.strip()) if args.fields else ()
    return TailAsk(
        args.index,
        args.query,
        args.sid,
        backfill=args.n,
        fields=fields or None,
        limit=args.limit,
        as_json=args.json,
        delay=args.delay,
        order_by=args.order_by,
        max_rate=args.max_rate,
    )


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    cli = CliSettings.from_env(env)
    parser = build_parser(cli)
    args = parser.parse_args(argv)
    try:
        if args.command in ("tail", "counts"):
            _check_stream_target(parser, args)
        if args.command == "tail":
            return run_tail(
                args.tailor,
                _tail_ask(parser, args),
                color=stdout_wants_color(args.color, cli.no_color),
                quiet=args.quiet,
                out=sys.stdout,
                token=args.token,
            )
        if args.command == "counts":
            ask = CountAsk(
                args.index,
                args.query,
                args.sid,
                by=args.by,
                k=args.k,
                every=args.every,
                since=args.since,
                delay=args.delay,
                limit=args.limit,
            )
            return run_counts(
                args.tailor,
                ask,
                as_json=args.json,
                redraw=sys.stdout.isatty(),
                quiet=args.quiet,
                out=sys.stdout,
                token=args.token,
            )
        if args.command in ("readers", "writers"):
            return run_readers_add(args.file, args.name, args.targets, out=sys.stdout, kind=args.command)
        if args.command == "post":
            if args.batch < 1:
                parser.error("post: --batch must be at least 1")
            return run_post(
                args.beater,
                args.index,
                args.file,
                batch_size=args.batch,
                token=args.token,
                max_retries=args.max_retries,
                out=sys.stdout,
            )
        return run_queries(
            args.engine,
            args.prefix,
            args.index,
            args.router,
            args.realm,
            args.authid,
            args.secret,
            beaters=args.beater or [cli.beater_url],
            as_json=args.json,
            out=sys.stdout,
        )
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader (head, less) went away: as quiet as any Unix filter.
        sys.stderr.close()
        return 0
    except CliError as exc:
        say(str(exc))
        return 1
