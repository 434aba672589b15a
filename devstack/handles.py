"""What a started process is to whoever started it: its URL, its process id, how to stop it."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.partitions import partition_of
from devstack.engine import EngineNode
from devstack.processes import ManagedProcess, listens_in_group, wait_for_page, wait_for_port


@dataclass
class EngineHandle:
    """An engine: the nodes this stack runs, or none when it uses one running elsewhere."""

    urls: list[str]
    nodes: list[EngineNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def node(self) -> EngineNode | None:
        return self.nodes[0] if self.nodes else None

    @property
    def pid(self) -> int:
        """The first node's launcher (its process group holds the JVM)."""
        node = self.node
        if node is None or node.process is None:
            raise RuntimeError("an engine this stack did not start has no process here")
        return node.process.pid

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class ProcessHandle:
    """A child process this stack started and stops."""

    process: ManagedProcess

    @property
    def pid(self) -> int:
        """Its process id (a router's: the crossbar controller, whose worker is a child)."""
        if self.process.process is None:
            raise RuntimeError(f"{self.process.name} was never started")
        return self.process.process.pid

    def stop(self) -> int | None:
        return self.process.stop()


@dataclass
class RouterHandle(ProcessHandle):
    """A crossbar router node on the loopback interface; ``stop`` and ``start`` again keep its port.

    The front node (partition 0, the contract's URL and page) holds the handles of the other
    partitions' nodes (common/router_tier.py): stopping or starting it stops or starts them all.
    """

    port: int
    port_taken: bool = False
    partition: int = 0
    partitions: list[RouterHandle] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def urls(self) -> list[str]:
        """Every node's URL, in partition order."""
        return [self.url, *(node.url for node in self.partitions)]

    def url_for(self, sid: str) -> str:
        """The URL of the node that carries ``docs-for-<sid>`` (common/partitions.py)."""
        return self.urls[partition_of(sid, len(self.urls))]

    @property
    def service_url(self) -> str:
        """``ESTROM_ROUTER_URL`` for beaters and tailors: every node, comma-separated."""
        return ",".join(self.urls)

    def start(self) -> None:
        """Start it (and the other partitions' nodes) and wait until *this* router serves its page:
        an open port alone may be another process's that took the port first (the router then dies),
        and a first WebSocket handshake sent while the worker still boots can outlast a client's
        handshake timeout."""
        self.process.start()
        wait_for_port("127.0.0.1", self.port, 60, self.process.alive)
        # A partition's node has no page: its metrics, then.
        page, marker = ("", b"<title>estrom") if self.partition == 0 else ("metrics", b"estrom_router_")
        wait_for_page(f"http://127.0.0.1:{self.port}/{page}", marker, 60, self.process.alive)
        if not listens_in_group(self.port, self.pid):
            # Another run's router took the port first and serves the same page; ours is dying.
            self.port_taken = True
            raise RuntimeError(f"port {self.port} is another process's, not this router's")
        for node in self.partitions:
            node.start()

    def stop(self) -> int | None:
        for node in reversed(self.partitions):
            node.stop()
        return self.process.stop()

    def lost_its_port(self) -> bool:
        """Whether something else listened on its port first (it then dies)."""
        if self.port_taken:
            return True
        if self.process.alive() or not self.process.log_path.exists():
            return False
        log = self.process.log_path.read_text(errors="replace")
        return "Address already in use" in log or "CannotListenError" in log


@dataclass
class ServiceHandle(ProcessHandle):
    """A beater or tailor, at the address its ready line gave (empty when not waited for)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
