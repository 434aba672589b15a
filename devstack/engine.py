"""Provision and run a real Elasticsearch with its percolator, from Maven Central.

Maven Central publishes the stripped server distribution (``integ-test-zip``)
and the percolator module jar separately, so we fetch both with ``mvn``,
assemble them once into a cache outside the repository, and start nodes from
that cache as an unprivileged user (Elasticsearch refuses to run as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import die_with_parent

#: The engine the tests run against. See README "Supported engines".
ENGINE_VERSION = "7.17.29"
DIST_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{v}:zip"
PERCOLATOR_ARTIFACT = "org.elasticsearch.plugin:percolator-client:{v}"
ENGINE_USER = "estrom-engine"

_PERCOLATOR_DESCRIPTOR = """\
description=Percolator module adds capability to index queries and query these queries by specifying documents
version={v}
name=percolator
classname=org.elasticsearch.percolator.PercolatorPlugin
java.version=1.8
elasticsearch.version={v}
extended.plugins=
has.native.controller=false
type=isolated
"""

# GC logs to a relative path in the stock jvm.options break as soon as the
# working directory is not the distribution's; warnings to stderr suffice here.
_JVM_OPTIONS = """\
-XX:+UseG1GC
-Djava.io.tmpdir=${ES_TMPDIR}
-XX:+ExitOnOutOfMemoryError
-Xlog:disable
-Xlog:all=warning:stderr:utctime,level,tags
"""


def _progress(msg: str) -> None:
    print(f"[estrom-engine] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where the assembled engine lives; readable by the unprivileged engine user."""
    configured = os.environ.get("ESTROM_CACHE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        # /root is not traversable by the engine user, so root caches system-wide.
        return Path("/var/cache/estrom")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "estrom"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mvn_copy(artifact: str, dest: Path) -> Path:
    """Fetch one artifact with Maven (its own repository config, no hard-coded URL)."""
    dest.mkdir(parents=True, exist_ok=True)
    _progress(f"fetching {artifact} with mvn")
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "dependency:copy",
            f"-Dartifact={artifact}",
            f"-DoutputDirectory={dest}",
        ],
        check=True,
        cwd=dest,
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno(),
    )
    parts = artifact.split(":")
    ext = parts[3] if len(parts) > 3 else "jar"
    found = dest / f"{parts[1]}-{parts[2]}.{ext}"
    if not found.exists():
        raise RuntimeError(f"mvn did not produce {found}")
    return found


def ensure_engine(version: str = ENGINE_VERSION) -> Path:
    """Return the home of an assembled engine, fetching and assembling it once."""
    root = cache_dir()
    home = root / f"elasticsearch-{version}"
    marker = home / ".estrom-ready"
    if marker.exists():
        return home
    with _locked(root / f".lock-{version}"):
        if marker.exists():
            return home
        downloads = root / "downloads"
        dist_zip = _mvn_copy(DIST_ARTIFACT.format(v=version), downloads)
        perc_jar = _mvn_copy(PERCOLATOR_ARTIFACT.format(v=version), downloads)
        staging = Path(tempfile.mkdtemp(prefix="assemble-", dir=root))
        _progress(f"assembling engine in {home}")
        with zipfile.ZipFile(dist_zip) as zf:
            zf.extractall(staging)
        unpacked = staging / f"elasticsearch-{version}"
        module = unpacked / "modules" / "percolator"
        module.mkdir(parents=True, exist_ok=True)
        shutil.copy2(perc_jar, module / perc_jar.name)
        (module / "plugin-descriptor.properties").write_text(_PERCOLATOR_DESCRIPTOR.format(v=version))
        for path in [unpacked, *unpacked.rglob("*")]:
            mode = path.stat().st_mode
            # zipfile drops the executable bits; the launcher scripts need them.
            if path.is_dir() or path.parent.name == "bin":
                path.chmod(mode | 0o755)
            else:
                path.chmod(mode | 0o644)
        if home.exists():
            shutil.rmtree(home)
        unpacked.rename(home)
        shutil.rmtree(staging, ignore_errors=True)
        root.chmod(root.stat().st_mode | 0o755)
        marker.write_text(version + "\n")
    return home


def ensure_engine_user() -> str | None:
    """The user the engine runs as: a dedicated system user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(ENGINE_USER)
    except KeyError:
        _progress(f"creating system user {ENGINE_USER}")
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ENGINE_USER,
            ],
            check=True,
        )
    return ENGINE_USER


def java_home() -> str:
    """A JDK the 7.17 engine accepts (11 to 17); the no-JDK distribution needs one."""
    configured = os.environ.get("ESTROM_ENGINE_JAVA_HOME") or os.environ.get("ES_JAVA_HOME")
    if configured:
        return configured
    for candidate in ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk"):
        if Path(candidate, "bin", "java").exists():
            return candidate
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no Java found: set ESTROM_ENGINE_JAVA_HOME")
    return str(Path(java).resolve().parent.parent)


@dataclass
class EngineNode:
    """One running engine node; its state directory is owned by the engine user."""

    home: Path
    state_dir: Path
    http_port: int
    transport_port: int
    heap: str = "512m"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _write_config(self) -> Path:
        conf = self.state_dir / "config"
        conf.mkdir(parents=True, exist_ok=True)
        for name in ("log4j2.properties",):
            shutil.copy2(self.home / "config" / name, conf / name)
        (conf / "jvm.options").write_text(_JVM_OPTIONS)
        settings = {
            "cluster.name": "estrom",
            "node.name": "estrom-engine",
            "path.data": str(self.state_dir / "data"),
            "path.logs": str(self.state_dir / "logs"),
            "network.host": "127.0.0.1",
            "http.port": self.http_port,
            "transport.port": self.transport_port,
            "discovery.type": "single-node",
            "xpack.security.enabled": False,
            # A dev node on a shared disk must not go read-only at 95 % usage.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.auto_create_index": True,
            "logger.level": "WARN",
        }
        (conf / "elasticsearch.yml").write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())
        )
        return conf

    def start(self, log_path: Path | None = None) -> None:
        user = ensure_engine_user()
        for sub in ("data", "logs", "tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        if user:
            subprocess.run(["chown", "-R", user, str(self.state_dir)], check=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_PATH_CONF": str(conf),
            "ES_JAVA_HOME": java_home(),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "ES_TMPDIR": str(self.state_dir / "tmp"),
            "LANG": "C.UTF-8",
        }
        argv = [str(self.home / "bin" / "elasticsearch")]
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

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until health is green or yellow; fail early if the JVM died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"engine exited with {self.process.returncode}")
            health = self.health()
            if health and health.get("status") in ("green", "yellow"):
                return
            time.sleep(0.25)
        raise TimeoutError(f"engine not healthy within {timeout:.0f}s at {self.url}")

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


def main() -> None:
    """``python -m devstack.engine fetch``: provision the cache (used by scripts)."""
    home = ensure_engine()
    print(home)


if __name__ == "__main__":
    main()
