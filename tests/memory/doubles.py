"""In-memory stand-ins for what the tailor talks to, for the in-memory HTTP tier.

The tailor's own parts (resource, streams, hub, resolver, backfill splice)
are real; only the WAMP session (router + beater) and the engine's search
are replaced, by objects that keep their answers in memory and let a test
hold an answer back to act in between (a client leaving mid-registration,
a live hit arriving mid-backfill). Integration tests use the real ones.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from common.access.access_file import ReadersHolder
from common.access.quotas import QuotaLimits
from common.access.readers import Readers
from common.config import Settings
from common.contract import DESCRIBE_QUERY, REGISTER_QUERY, topic_for
from common.engine import EngineUnavailable
from common.query.identity import canonicalize, sid_for
from common.wamp import RouterUnavailable
from tailor.http.api import TailorAPI
from tailor.readers.gate import ReaderGate
from tailor.streaming.format import EncodedHit
from tailor.subscriptions.hub import SubscriptionHub

REGISTER = REGISTER_QUERY
DESCRIBE = DESCRIBE_QUERY


class MemorySubscription:
    def __init__(self, session: MemorySession, topic: str, handler: Callable[..., None]) -> None:
        self.session, self.topic, self.handler = session, topic, handler
        self.active = True

    def unsubscribe(self) -> Deferred[None]:
        self.active = False
        self.session.topics[self.topic].remove(self)
        return succeed(None)


class MemorySession:
    """The router and a beater in one: register/describe answered from a dict, topics fanned out."""

    def __init__(self) -> None:
        self.topics: dict[str, list[MemorySubscription]] = defaultdict(list)
        self.stored: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        #: When set, calls wait here until the test answers them.
        self.hold_calls = False
        self.held: list[tuple[Deferred[Any], Callable[[], Any]]] = []
        #: Calls of these procedures fail with the error given (a beater's refusal, no beater).
        self.refuse: dict[str, Exception] = {}
        #: When set, subscribing fails with it (the router refuses the subscription).
        self.refuse_subscribe: Exception | None = None

    def is_attached(self) -> bool:
        return True

    def call(self, procedure: str, *args: Any) -> Deferred[Any]:
        self.calls.append((procedure, args))
        if procedure in self.refuse:
            return fail(self.refuse[procedure])
        answer = {REGISTER: self._register, DESCRIBE: self._describe}[procedure]
        if self.hold_calls:
            d: Deferred[Any] = Deferred()
            self.held.append((d, lambda: answer(*args)))
            return d
        return succeed(answer(*args))

    def answer_held(self) -> None:
        held, self.held = self.held, []
        for d, answer in held:
            if not d.called:
                d.callback(answer())

    def _register(self, index: str, query: Any) -> str:
        sid = sid_for(index, query)
        self.stored[sid] = {"sid": sid, "index": index, "query": canonicalize(query)}
        return sid

    def _describe(self, sid: str) -> dict[str, Any]:
        return self.stored[sid]

    def subscribe(self, handler: Callable[..., None], topic: str) -> Deferred[MemorySubscription]:
        if self.refuse_subscribe is not None:
            return fail(self.refuse_subscribe)
        subscription = MemorySubscription(self, topic, handler)
        self.topics[topic].append(subscription)
        return succeed(subscription)

    def subscribers(self, sid: str) -> int:
        return len(self.topics[topic_for(sid)])

    def publish(self, sid: str, *hits: dict[str, Any]) -> None:
        for subscription in list(self.topics[topic_for(sid)]):
            subscription.handler(*hits)


class MemoryWamp:
    """What SessionHolder offers the tailor: the session, joined from the start (``joined``
    False: the router is away)."""

    def __init__(self, session: MemorySession) -> None:
        self.session = session
        self.joined = True

    def require(self) -> MemorySession:
        if not self.joined:
            raise RouterUnavailable("not connected to the router")
        return self.session

    def when_joined(self, callback: Callable[[Any], None]) -> None:
        return None

    def states(self) -> list[bool]:
        """One router node, joined or not (common/router_tier.py)."""
        return [self.joined]


async def no_aliases(_target: str, _own_prefix: str) -> list[str]:
    """An engine with no aliases (the alias check is the real engine's, tests/security)."""
    return []


class MemoryEngine:
    """The engine's document search over a list; a test may hold its answers back."""

    def __init__(self) -> None:
        self.docs: dict[str, list[dict[str, Any]]] = defaultdict(list)  # oldest first
        self.hold = False
        self.held: list[Deferred[Any]] = []
        self.searches = 0
        #: When set, every search fails as an unreachable engine does.
        self.down = False

    def store(self, index: str, *sources: dict[str, Any]) -> None:
        self.docs[index].extend(sources)

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        self.searches += 1
        if self.down:
            raise EngineUnavailable("engine unreachable: ConnectionError")
        if self.hold:
            d: Deferred[None] = Deferred()
            self.held.append(d)
            await d
        return fn(self)

    async def cluster_health(self) -> dict[str, Any] | None:
        """One green node: what ``Engine.cluster_health`` answers of a healthy single node."""
        return {"status": "green", "nodes": 1, "unassigned_shards": 0}

    def release(self) -> None:
        held, self.held = self.held, []
        for d in held:
            if not d.called:
                d.callback(None)

    def search(self, index: str, body: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        newest_first = list(reversed(self.docs[index]))[: body["size"]]
        return {"hits": {"hits": [{"_index": index, "_source": s} for s in newest_first]}}

    async def ping(self) -> bool:
        return True


class MemoryTailor:
    """A TailorAPI on memory doubles, requested through treq's StubTreq (a real Agent and Site)."""

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.session = MemorySession()
        self.engine = MemoryEngine()
        self.settings = Settings(**settings)
        self.wamp = wamp = MemoryWamp(self.session)
        self.hub = SubscriptionHub(wamp, self.clock, 100, 0.0, prepare=EncodedHit)  # type: ignore[arg-type]
        gate = ReaderGate(ReadersHolder(Readers.open_default()), QuotaLimits(), self.settings.retry_after)
        self.api = TailorAPI(
            self.settings,
            self.engine,
            wamp,
            self.hub,
            self.clock,
            gate,
            no_aliases,  # type: ignore[arg-type]
        )
        self.resource: Resource = self.api.routes()
        self.http = StubTreq(self.resource)

    def get(self, path: str, **params: Any) -> Deferred[Any]:
        return self.http.get("http://tailor" + path, params=params)

    def flush(self) -> None:
        self.http.flush()


def result(d: Deferred[Any]) -> Any:
    """The result of a Deferred that must have fired already (everything here is in memory)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def has_result(d: Deferred[Any]) -> bool:
    """Whether ``d`` has a result yet (left in place for whoever waits on it)."""
    box: list[Any] = []
    d.addBoth(lambda r: (box.append(r), r)[1])
    return bool(box)


class Collected:
    """The body of a response that stays open, as far as it has arrived."""

    def __init__(self, tailor: MemoryTailor, response: Any) -> None:
        self.tailor = tailor
        self.response = response
        self.data = bytearray()
        self.done: Deferred[None] = tailor.http.collect(response, self.data.extend)

    def text(self) -> str:
        self.tailor.flush()
        return self.data.decode()

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]
