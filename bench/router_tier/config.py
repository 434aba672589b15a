"""A crossbar node of K router workers, router links between them and proxy workers in front.

What crossbar documents for a realm larger than one core: every router
worker hosts the realm, router links (rlinks) forward the events of a
subscription made on one worker from the others, and proxy workers accept
clients on one port and hand each session to a router worker, round robin.
Partition-aware clients connect to each worker's own port instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.router import router_venv

REALM = "estrom"
_ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


@dataclass(frozen=True)
class Tier:
    """Where a rendered node listens: each router worker's port, and the proxies' one port."""

    worker_ports: list[int]
    proxy_port: int | None

    @property
    def worker_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{p}/ws" for p in self.worker_ports]

    @property
    def proxy_url(self) -> str | None:
        return None if self.proxy_port is None else f"ws://127.0.0.1:{self.proxy_port}/ws"


def _role(name: str) -> dict[str, object]:
    # The publisher is disclosed: a router link forwards only events that name their publisher.
    return {
        "name": name,
        "permissions": [
            {
                "uri": "",
                "match": "prefix",
                "allow": _ALL,
                "disclose": {"caller": False, "publisher": True},
                "cache": True,
            }
        ],
    }


def node_key(cbdir: Path) -> str:
    """The node's Ed25519 public key (made by crossbar's own code): router links authenticate with it."""
    cbdir.mkdir(parents=True, exist_ok=True)
    script = "from crossbar.common.key import _maybe_generate_node_key as g; import sys; g(sys.argv[1])"
    subprocess.run([str(router_venv() / "bin" / "python"), "-c", script, str(cbdir)], check=True)
    found = re.search(r"public-key-ed25519: (\w+)", (cbdir / "key.pub").read_text())
    assert found, "crossbar wrote no public key"
    return found.group(1)


def render(cbdir: Path, worker_ports: list[int], proxy_port: int | None, key: str, proxies: int = 1) -> Tier:
    """Write ``cbdir/config.json`` for ``len(worker_ports)`` router workers (and proxies); ``key``:
    the node's public key (:func:`node_key`), which router links authenticate with."""
    cbdir.mkdir(parents=True, exist_ok=True)
    k = len(worker_ports)
    principals = {"rlink": {"realm": REALM, "role": "rlink", "authorized_keys": [key]}}
    workers: list[dict[str, object]] = []
    for i, port in enumerate(worker_ports):
        links = [
            {
                "id": f"link_{i}_to_{j}",
                "realm": REALM,
                "transport": {
                    "type": "websocket",
                    "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": other},
                    "url": f"ws://127.0.0.1:{other}/ws",
                    "serializers": ["cbor"],
                },
                # This worker's subscriptions pull the other's events here; not the reverse,
                # which the other worker's own link does.
                "forward_local_events": True,
                "forward_remote_events": False,
                "forward_local_invocations": False,
                "forward_remote_invocations": False,
            }
            for j, other in enumerate(worker_ports)
            if j != i
        ]
        transports: list[dict[str, object]] = [
            {
                "type": "websocket",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                "serializers": ["cbor", "msgpack", "json"],
                "auth": {
                    "anonymous": {"type": "static", "role": "load"},
                    "cryptosign": {"type": "static", "principals": principals},
                },
            }
        ]
        if proxy_port is not None:
            transports.append(
                {
                    "type": "rawsocket",
                    "endpoint": {"type": "unix", "path": str(cbdir / f"router{i}.sock")},
                    "serializers": ["cbor"],
                    "auth": {"anonymous-proxy": {"type": "static"}},
                }
            )
        workers.append(
            {
                "type": "router",
                "id": f"router{i}",
                "realms": [{"name": REALM, "roles": [_role("load"), _role("rlink")], "rlinks": links}],
                "transports": transports,
            }
        )
    if proxy_port is not None:
        web = cbdir / "web"
        web.mkdir(exist_ok=True)
        (web / "index.html").write_text("router tier\n")
        connections = {
            f"conn{i}": {
                "realm": REALM,
                "transport": {
                    "type": "rawsocket",
                    "endpoint": {"type": "unix", "path": str(cbdir / f"router{i}.sock")},
                    "serializer": "cbor",
                },
            }
            for i in range(k)
        }
        for n in range(proxies):
            workers.append(
                {
                    "type": "proxy",
                    "id": f"proxy{n}",
                    "connections": connections,
                    "routes": {REALM: {"load": sorted(connections)}},
                    "transports": [
                        {
                            "type": "web",
                            # Every proxy worker on the one port: the kernel spreads connections over them.
                            "endpoint": {
                                "type": "tcp",
                                "interface": "127.0.0.1",
                                "port": proxy_port,
                                "shared": True,
                            },
                            "paths": {
                                "/": {"type": "static", "directory": str(web)},
                                "ws": {
                                    "type": "websocket",
                                    "serializers": ["cbor", "msgpack", "json"],
                                    "auth": {"anonymous": {"type": "static", "role": "load"}},
                                },
                            },
                        }
                    ],
                }
            )
    (cbdir / "config.json").write_text(
        json.dumps({"version": 2, "controller": {}, "workers": workers}, indent=1)
    )
    return Tier(worker_ports, proxy_port)
