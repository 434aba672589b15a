"""Render router/config.json for the router image (run at image build time only).

The checked-in config is a developer's: 127.0.0.1, paths relative to the
cbdir. In a container the router listens on every interface (the other
services and the published port reach it there), and crossbar's cbdir, where
it writes its node key and pid file, is a tmpfs, so the image's root
filesystem can stay read-only: the config names its directories absolutely.
An optional fourth argument, ``partition``, renders the config of a router
node that is not the front (common/router_tier.py): the same image runs
either, one node per container.
"""

import json
import sys
from pathlib import Path
from typing import Any


def partition_node(transport: dict[str, Any]) -> None:
    """A partition's node beside the front (common/router_tier.py): only the services sign in there
    (WAMP-CRA); no page, no browser, no reader; its own ``/metrics``."""
    paths = transport["paths"]
    for name, path in list(paths.items()):
        if path.get("type") == "static":
            del paths[name]
        elif path.get("type") == "websocket":
            auth = path.get("auth", {})
            path["auth"] = {"wampcra": auth["wampcra"]} if "wampcra" in auth else {}
            if not path["auth"]:
                raise ValueError("a partition's router node takes only the services: set ESTROM_*_SECRET")


def main(source: str, target: str, app_dir: str, node: str = "front") -> None:
    """``node``: ``front`` (the contract's URL, the page) or ``partition`` (``partition_node``)."""
    if node not in ("front", "partition"):
        raise ValueError(f"node is front or partition, not {node!r}")
    config = json.loads(Path(source).read_text())
    for worker in config["workers"]:
        options = worker.get("options", {})
        if "pythonpath" in options:
            options["pythonpath"] = [str(Path(app_dir, p)) for p in options["pythonpath"]]
        for transport in worker.get("transports", []):
            transport["endpoint"]["interface"] = "0.0.0.0"
            for path in transport.get("paths", {}).values():
                if path.get("type") == "static":
                    path["directory"] = str(Path(app_dir, path["directory"]))
            if node == "partition":
                partition_node(transport)
    Path(target).write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
