"""In-memory HTTP: a real Site and a real Agent over a memory reactor, like treq's StubTreq.

``treq.testing.StubTreq`` wraps a *resource* in a plain ``Site``; the beater's
limits and decoding live in its Site's request factory, so these tests need
the service's own Site. ``SiteAgent`` is treq's ``RequestTraversalAgent``
for a given Site (same public Twisted pieces: ``MemoryReactorClock``,
``iosim``); wrapped in ``treq.client.HTTPClient`` it speaks treq's API.
"""

from __future__ import annotations

from typing import Any

from treq.client import HTTPClient
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from twisted.web.server import Site
from zope.interface import implementer


@implementer(IAgentEndpointFactory)
class _Endpoints:
    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor

    def endpointForURI(self, uri: Any) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(self.reactor, "127.0.0.1", uri.port)


class SiteAgent:
    """An IAgent whose connections reach ``site`` in memory; ``flush()`` moves the bytes."""

    def __init__(self, site: Site, reactor: MemoryReactorClock | None = None) -> None:
        self.reactor = reactor or MemoryReactorClock()
        self.site = site
        self._agent = Agent.usingEndpointFactory(self.reactor, _Endpoints(self.reactor))
        self.pumps: list[iosim.IOPump] = []

    def request(
        self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: IBodyProducer | None = None
    ) -> Deferred[Any]:
        response = self._agent.request(method, uri, headers, bodyProducer)
        _host, port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        server_address = IPv4Address("TCP", "127.0.0.1", port)
        client_address = IPv4Address("TCP", "127.0.0.1", 31337)
        server = self.site.buildProtocol(client_address)
        server_io = iosim.FakeTransport(
            server, isServer=True, hostAddress=server_address, peerAddress=client_address
        )
        client = factory.buildProtocol(None)
        client_io = iosim.FakeTransport(
            client, isServer=False, hostAddress=client_address, peerAddress=server_address
        )
        self.pumps.append(iosim.connect(server, server_io, client, client_io))
        return response

    def flush(self) -> None:
        """Move every byte both ways until nothing moves (for answers given later)."""
        for pump in list(self.pumps):
            pump.flush()

    def drop_clients(self) -> None:
        """Every client goes away: its connection is lost on both sides."""
        for pump in self.pumps:
            pump.clientIO.loseConnection()
        self.flush()


@implementer(IBodyProducer)
class BytesProducer:
    """A request body written at once (treq's default producer needs the global reactor)."""

    def __init__(self, body: bytes | str) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.length = len(self.body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def client_for(agent: SiteAgent) -> HTTPClient:
    """treq's API over ``agent``."""
    return HTTPClient(agent, data_to_body_producer=BytesProducer)


def result_of(d: Deferred[Any], agent: SiteAgent | None = None) -> Any:
    """The result of a Deferred that has fired (after moving the bytes); fails the test otherwise."""
    if agent is not None:
        agent.flush()
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "no answer yet"
    value = out[0]
    if hasattr(value, "raiseException"):
        value.raiseException()
    return value
