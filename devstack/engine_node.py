"""Run engine nodes from an assembled home: one alone, or a cluster of them on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.engine_cache import dist_of_home
from devstack.engine_dists import Dist
from devstack.engine_runtime import ensure_engine_user, java_home, jvm_options
from devstack.processes import die_with_parent, listens_in_group


@dataclass
class EngineNode:
    """One running engine node; its state directory is owned by the engine user.

    Alone by default (``discovery.type: single-node``); with ``seed_ports``
    it is one node of a cluster of the nodes on those transport ports.
    """

    home: Path
    state_dir: Path
    http_port: int
    transport_port: int
    heap: str = "512m"
    process: subprocess.Popen[bytes] | None = None
    node_name: str = "estrom-engine"
    cluster_name: str = "estrom"
    #: Transport ports of every node of the cluster (empty: a single node).
    seed_ports: list[int] = field(default_factory=list)
    #: Names of the nodes that elect the first master (cluster bootstrap).
    initial_masters: list[str] = field(default_factory=list)

    @property
    def dist(self) -> Dist:
        return dist_of_home(self.home)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _settings(self) -> dict[str, object]:
        dist = self.dist
        settings: dict[str, object] = {
            "cluster.name": self.cluster_name,
            "node.name": self.node_name,
            "path.data": str(self.state_dir / "data"),
            "path.logs": str(self.state_dir / "logs"),
            "network.host": "127.0.0.1",
            "http.port": self.http_port,
            "transport.port": self.transport_port,
            # A dev node on a shared disk must not go read-only at 95 % usage.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.auto_create_index": True,
            "logger.level": "WARN",
        }
        if self.seed_ports:
            settings["discovery.seed_hosts"] = [f"127.0.0.1:{p}" for p in self.seed_ports]
            key = (
                "cluster.initial_master_nodes"
                if dist.family == "elasticsearch"
                else "cluster.initial_cluster_manager_nodes"
            )
            settings[key] = self.initial_masters
        else:
            settings["discovery.type"] = "single-node"
        if dist.family == "elasticsearch":
            settings["xpack.security.enabled"] = False
        return settings

    def _write_config(self) -> Path:
        dist = self.dist
        conf = self.state_dir / "config"
        conf.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.home / "config" / "log4j2.properties", conf / "log4j2.properties")
        (conf / "jvm.options").write_text(jvm_options(dist, self.home))
        (conf / dist.config_file).write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in self._settings().items())
        )
        return conf

    def start(self, log_path: Path | None = None) -> None:
        dist = self.dist
        user = ensure_engine_user()
        for sub in ("data", "logs", "tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        if user:
            subprocess.run(["chown", "-R", user, str(self.state_dir)], check=True)
        p = dist.env_prefix
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            f"{p}PATH_CONF": str(conf),
            f"{p}JAVA_HOME": java_home(dist),
            f"{p}JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            f"{p}TMPDIR": str(self.state_dir / "tmp"),
            "LANG": "C.UTF-8",
        }
        argv = [str(self.home / "bin" / dist.binary)]
        if user:
            env_args = [f"{k}={v}" for k, v in env.items()]
            argv = ["runuser", "-u", user, "--", "env", *env_args, *argv]
        out = log_path.open("ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=self.state_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def health(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=2) as resp:
                return json.load(resp)
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def wait_ready(self, timeout: float = 120.0, nodes: int = 1) -> None:
        """Block until health is green or yellow with ``nodes`` nodes; fail early if the JVM died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"engine exited with {self.process.returncode}")
            health = self.health()
            if (
                health
                and health.get("status") in ("green", "yellow")
                and int(health.get("number_of_nodes", 0)) >= nodes  # type: ignore[call-overload]
                # another run's engine may hold our free port: its answer is not ours (ours then dies)
                and (self.process is None or listens_in_group(self.http_port, self.process.pid))
            ):
                return
            time.sleep(0.25)
        raise TimeoutError(f"engine not healthy within {timeout:.0f}s at {self.url}")

    def kill(self) -> None:
        """``kill -9`` the node (the JVM and its launcher), as a crash would."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the whole process group, escalate to SIGKILL after the timeout."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(10)


def cluster_nodes(
    home: Path,
    state_dir: Path,
    count: int = 3,
    *,
    heap: str = "384m",
    cluster_name: str = "estrom-cluster",
    ports: Callable[[], int],
) -> list[EngineNode]:
    """``count`` nodes of one cluster on loopback (not started): every node master-eligible and a
    data node, each seeded with every transport port, all of them electing the first master.

    ``ports`` hands out free ports (``devstack.processes.free_port``); the node ``i`` keeps its
    data in ``state_dir/node-i``. Used by the cluster tests and by ``bench compare --engine-nodes``.
    """
    names = [f"node-{i}" for i in range(count)]
    transports = [ports() for _ in names]
    return [
        EngineNode(
            home=home,
            state_dir=state_dir / name,
            http_port=ports(),
            transport_port=transport,
            heap=heap,
            node_name=name,
            cluster_name=cluster_name,
            seed_ports=transports,
            initial_masters=names,
        )
        for name, transport in zip(names, transports, strict=True)
    ]


def start_cluster(nodes: list[EngineNode], log_dir: Path, timeout: float = 600.0) -> None:
    """Start every node (log: ``log_dir/<node name>.log``), then wait until each sees them all.

    Three OpenSearch 3.8 JVMs took 284 s to form their cluster under a load average of 33 on 2 cores.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        node.start(log_path=log_dir / f"{node.node_name}.log")
    for node in nodes:
        node.wait_ready(timeout=timeout, nodes=len(nodes))
