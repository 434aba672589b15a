"""A TCP proxy in front of a real server, to cut and restore it in fault tests.

``cut()`` drops every connection and closes the listening port (clients get
"connection refused", as from a stopped server); ``hang()`` keeps accepting
but never answers (a wedged server); ``blackhole()`` keeps every connection
open and moves nothing across it either way until ``restore()`` (a network
partition: no FIN, no RST, no data; what was sent waits, as TCP retransmits); ``reset()`` aborts every open connection with a
TCP RST (SO_LINGER 0) and keeps forwarding new ones; ``delay(s)`` holds
every chunk ``s`` seconds before forwarding it (a slow link). ``restore()``
brings back the normal forwarding on the same port. The server behind stays
up, so tests of "engine down" and "engine back" cost no engine restart.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time


class TCPProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._hanging = False
        self._blackhole = False
        self._delay = 0.0
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hang(self) -> None:
        # Hanging first: a client reconnecting after the drop is held, never forwarded.
        with self._lock:
            self._hanging = True
        self._drop_connections()

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def blackhole(self) -> None:
        self._blackhole = True

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def reset(self) -> None:
        """RST every open connection (the peer sees ECONNRESET); new ones are forwarded."""
        with self._lock:
            conns, self._conns = self._conns, set()
        linger = struct.pack("ii", 1, 0)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            conn.close()

    def restore(self) -> None:
        self._blackhole = False
        self._delay = 0.0
        if self._hanging:
            with self._lock:
                self._hanging = False
            self._drop_connections()
        with self._lock:
            if self._listener is not None:
                return
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            self.port = sock.getsockname()[1]
            self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._hanging:
                with self._lock:
                    self._conns.add(client)  # held open, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                if self._hanging:  # hung while it was being connected: held, never answered
                    upstream.close()
                    self._conns.add(client)
                    continue
                self._conns |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        try:
            while True:
                if self._blackhole:
                    time.sleep(0.05)
                    if a.fileno() < 0 or b.fileno() < 0:
                        return
                    continue
                readable, _, _ = select.select([a, b], [], [], 0.1)
                for src in readable:
                    data = src.recv(65536)
                    if not data:
                        return
                    if self._delay:
                        time.sleep(self._delay)
                    pair[src].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns -= {a, b}


def proxy_to(proxies: list[TCPProxy], url: str) -> TCPProxy:
    """A TCP proxy in front of ``http://host:port`` or ``ws://host:port/ws``, closed with ``proxies``."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    proxy = TCPProxy(host, int(port))
    proxies.append(proxy)
    return proxy
