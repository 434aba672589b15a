"""K crossbar router nodes for one realm, router links between them, and a proxy node in front.

crossbar keeps a realm in one router worker (one process), and a node stops
when any of its workers dies. So each partition gets a node of its own (one
router worker: a crash or restart is that partition's alone), and:

- **router links** (rlinks) join every router node to every other, events
  only: a subscription made on one node pulls that topic's events from the
  others, so a client that knows nothing of partitions still gets every
  event of ``docs-for-<sid>`` whichever node its session landed on. A link
  forwards only events that name their publisher: publishers are disclosed.
  Links sign in with WAMP-cryptosign, with the other nodes' keys;
- a **proxy node** accepts clients on one port and hands each session to a
  router node, round robin, over TCP with WAMP-cryptosign-proxy (its node
  id is the principal, its key the credential);
- partition-aware clients connect to each router node's own port.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.router import router_venv

REALM = "estrom"
PROXY_ID = "proxy0"
_ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


@dataclass(frozen=True)
class Tier:
    """Where a rendered tier listens, and the crossbar node directories to start."""

    worker_ports: list[int]
    proxy_port: int | None
    router_dirs: list[Path]
    proxy_dir: Path | None

    @property
    def worker_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{p}/ws" for p in self.worker_ports]

    @property
    def proxy_url(self) -> str | None:
        return None if self.proxy_port is None else f"ws://127.0.0.1:{self.proxy_port}/ws"


def node_key(cbdir: Path) -> str:
    """The node's Ed25519 public key, made by crossbar's own code once per ``cbdir``."""
    cbdir.mkdir(parents=True, exist_ok=True)
    script = "from crossbar.common.key import _maybe_generate_node_key as g; import sys; g(sys.argv[1])"
    subprocess.run([str(router_venv() / "bin" / "python"), "-c", script, str(cbdir)], check=True)
    found = re.search(r"public-key-ed25519: (\w+)", (cbdir / "key.pub").read_text())
    if found is None:
        raise RuntimeError(f"crossbar wrote no public key into {cbdir}")
    return found.group(1)


def _role(name: str) -> dict[str, Any]:
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


def router_node(
    i: int,
    worker_ports: list[int],
    backend_port: int | None,
    router_keys: list[str],
    proxy_key: str | None,
    links: bool = True,
) -> dict[str, Any]:
    """Router node ``i``: its public port for partition-aware clients and links, its port for the proxy."""
    rlinks = [
        {
            "id": f"link_{i}_to_{j}",
            "realm": REALM,
            "transport": {
                "type": "websocket",
                "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
                "url": f"ws://127.0.0.1:{port}/ws",
                "serializers": ["cbor"],
            },
            # This node's subscriptions pull the other's events; the other's own link does the reverse.
            "forward_local_events": True,
            "forward_remote_events": False,
            "forward_local_invocations": False,
            "forward_remote_invocations": False,
        }
        for j, port in enumerate(worker_ports)
        if j != i and links
    ]
    transports: list[dict[str, Any]] = [
        {
            "type": "websocket",
            "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": worker_ports[i]},
            "serializers": ["cbor", "msgpack", "json"],
            "auth": {
                "anonymous": {"type": "static", "role": "load"},
                "cryptosign": {
                    "type": "static",
                    "principals": {
                        "rlink": {"realm": REALM, "role": "rlink", "authorized_keys": router_keys}
                    },
                },
            },
        }
    ]
    if backend_port is not None and proxy_key is not None:
        principal = {"realm": REALM, "role": "load", "authorized_keys": [proxy_key]}
        transports.append(
            {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": backend_port},
                "serializers": ["cbor"],
                "auth": {"cryptosign-proxy": {"type": "static", "principals": {PROXY_ID: principal}}},
            }
        )
    return {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "id": f"router{i}",
                "realms": [{"name": REALM, "roles": [_role("load"), _role("rlink")], "rlinks": rlinks}],
                "transports": transports,
            }
        ],
    }


def proxy_node(proxy_port: int, backend_ports: list[int], web: Path) -> dict[str, Any]:
    """The proxy node: one public port, each session handed to a router node, round robin."""
    connections = {
        f"router{i}": {
            "realm": REALM,
            "transport": {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
                "serializer": "cbor",
            },
            "auth": {"cryptosign-proxy": {"type": "static"}},
        }
        for i, port in enumerate(backend_ports)
    }
    return {
        "version": 2,
        # The node id is the principal the router nodes know the proxy by.
        "controller": {"id": PROXY_ID},
        "workers": [
            {
                "type": "proxy",
                "id": PROXY_ID,
                "connections": connections,
                "routes": {REALM: {"load": sorted(connections)}},
                "transports": [
                    {
                        "type": "web",
                        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": proxy_port},
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
        ],
    }


def render(
    root: Path, worker_ports: list[int], proxy: tuple[int, list[int]] | None, links: bool = True
) -> Tier:
    """Write one node directory per router (``root/router<i>``) and, with ``proxy`` = (its port, the
    router nodes' ports for it), ``root/proxy``; ``links``: router links between the routers."""
    router_dirs = [root / f"router{i}" for i in range(len(worker_ports))]
    router_keys = [node_key(d) for d in router_dirs]
    proxy_dir = root / "proxy" if proxy else None
    proxy_key = node_key(proxy_dir) if proxy_dir else None
    for i, directory in enumerate(router_dirs):
        backend = proxy[1][i] if proxy else None
        config = router_node(i, worker_ports, backend, router_keys, proxy_key, links)
        (directory / "config.json").write_text(json.dumps(config, indent=1))
    if proxy and proxy_dir:
        web = root / "web"
        web.mkdir(exist_ok=True)
        (web / "index.html").write_text("router tier\n")
        (proxy_dir / "config.json").write_text(json.dumps(proxy_node(proxy[0], proxy[1], web), indent=1))
    return Tier(worker_ports, proxy[0] if proxy else None, router_dirs, proxy_dir)
