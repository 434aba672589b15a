"""Provision and run a real engine with its percolator, from Maven Central.

Two families, one way: Maven Central publishes each one's stripped server
distribution (``integ-test-zip``) and its modules' jars separately, so we
fetch them with ``mvn``, assemble them once per distribution into a cache
outside the repository, and start nodes from that cache as an unprivileged
user (neither engine runs as root).

Modules (``Dist.modules``), installed under ``modules/`` as the engines' own
distributions do, each with its jars and a ``plugin-descriptor.properties``;
one the integ-test zip already carries (OpenSearch 3 has them all) is kept:

- ``percolator``: what estrom percolates with;
- ``mapper-extras``: ``scaled_float``, ``rank_feature``, ``search_as_you_type``
  ..., which shippers' index templates use (Filebeat's: ``scaled_float``);
- ``ingest-common``: the ingest processors (``set``, ``remove``, ``drop``,
  ``rename``, ``grok``, ``dissect`` ...) shippers' pipelines name, and
  ``lang-painless``, which it extends and which runs processors' ``if``
  conditions and ``script`` processors. OpenSearch only: Maven Central has
  ``org.opensearch.plugin:ingest-common`` and ``lang-painless`` with their
  dependencies (grok, dissect, joni, jcodings; the painless SPI, antlr, asm).
  Elasticsearch 7.17's ``ingest-common`` is not on Maven Central (nor
  ``lang-painless`` or ``elasticsearch-grok``), so Elasticsearch nodes run
  ingest pipelines without processors: a pipeline naming one is refused
  (``400 parse_exception: No processor type exists with name [set]``).
  ``Dist.has_ingest_processors`` tells tests which case they run on.

The cache's marker (``.estrom-ready``) records the layout (``LAYOUT``, the
modules): a cache assembled with another module set is assembled again.

``ESTROM_ENGINE_DIST=<family>-<version>`` picks the distribution (README
"Supported engines"): ``elasticsearch-7.17.29`` (the default),
``opensearch-2.19.6`` and ``opensearch-3.8.0`` (the newest 3.x whose
``percolator-client`` of the same version resolves: 3.9.0 has none). Neither
OpenSearch integ-test zip carries the security plugin, so nodes speak plain
HTTP without a setting to turn it off.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import die_with_parent, listens_in_group

#: The engine the tests run against by default. See README "Supported engines".
DEFAULT_DIST = "elasticsearch-7.17.29"
#: Every distribution the test matrix runs (scripts/test).
TESTED_DISTS = ("elasticsearch-7.17.29", "opensearch-2.19.6", "opensearch-3.8.0")
#: Kept for callers that name the Elasticsearch version.
ENGINE_VERSION = "7.17.29"
ENGINE_USER = "estrom-engine"
JAVA17 = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk")
#: OpenSearch 3 is built for Java 21; the machine carries a Temurin 25 beside Java 17.
JAVA21_PLUS = ("/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/temurin-21-jdk-amd64")
#: The assembled cache's layout: bumped whenever what ``ensure_engine`` installs changes,
#: so a cache assembled before is assembled again (1: the percolator alone, no layout recorded;
#: 2: + mapper-extras, + ingest-common on OpenSearch 2, the zip's own modules kept;
#: 3: + lang-painless on OpenSearch 2, which ingest-common extends).
LAYOUT = 3
MARKER = ".estrom-ready"


@dataclass(frozen=True)
class Module:
    """One module installed into ``modules/<name>``: its Maven artifacts (jar first) and descriptor."""

    name: str
    description: str
    classname: str
    artifacts: tuple[str, ...]
    #: Plugins this one extends through SPI (descriptor's ``extended.plugins``).
    extended_plugins: str = ""
    #: Its ``plugin-security.policy`` (the security manager's grants), if it needs one.
    policy: str = ""


#: lang-painless's ``plugin-security.policy``, as OpenSearch ships it: it compiles scripts to classes.
PAINLESS_POLICY = """grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";

  // needed to find the classloader to load allowlisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
"""


@dataclass(frozen=True)
class Dist:
    """One engine distribution: family, version and how Maven Central names its parts."""

    family: str
    version: str

    @property
    def name(self) -> str:
        return f"{self.family}-{self.version}"

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    @property
    def group(self) -> str:
        return "org.elasticsearch" if self.family == "elasticsearch" else "org.opensearch"

    @property
    def dist_artifact(self) -> str:
        return f"{self.group}.distribution.integ-test-zip:{self.family}:{self.version}:zip"

    @property
    def percolator_artifact(self) -> str:
        return f"{self.group}.plugin:percolator-client:{self.version}"

    @property
    def percolator_class(self) -> str:
        if self.family == "elasticsearch":
            return "org.elasticsearch.percolator.PercolatorPlugin"
        # OpenSearch 3 renamed the module's plugin class.
        if self.major >= 3:
            return "org.opensearch.percolator.PercolatorModulePlugin"
        return "org.opensearch.percolator.PercolatorPlugin"

    @property
    def modules(self) -> tuple[Module, ...]:
        """What is installed under ``modules/`` beside the distribution's own (module docstring)."""
        g, v = self.group, self.version
        mods = [
            Module(
                "percolator",
                "Percolator module adds capability to index queries and query these "
                "queries by specifying documents",
                self.percolator_class,
                (self.percolator_artifact,),
            ),
            Module(
                "mapper-extras",
                "Adds advanced field mappers",
                f"{g}.index.mapper.MapperExtrasModulePlugin"
                if self.family == "opensearch" and self.major >= 3
                else f"{g}.index.mapper.MapperExtrasPlugin",
                (f"{g}.plugin:mapper-extras-client:{v}",),
            ),
        ]
        if self.family == "opensearch":
            # Compile dependencies of lang-painless's, ingest-common's and opensearch-grok's POMs (2.19.6).
            mods.append(
                Module(
                    "lang-painless",
                    "An easy, safe and fast scripting language for OpenSearch",
                    "org.opensearch.painless.PainlessModulePlugin"
                    if self.major >= 3
                    else "org.opensearch.painless.PainlessPlugin",
                    (
                        f"org.opensearch.plugin:lang-painless:{v}",
                        f"org.opensearch.plugin:opensearch-scripting-painless-spi:{v}",
                        "org.antlr:antlr4-runtime:4.13.1",
                        "org.ow2.asm:asm:9.7",
                        "org.ow2.asm:asm-util:9.7",
                        "org.ow2.asm:asm-tree:9.7",
                        "org.ow2.asm:asm-commons:9.7",
                        "org.ow2.asm:asm-analysis:9.7",
                    ),
                    policy=PAINLESS_POLICY,
                )
            )
            mods.append(
                Module(
                    "ingest-common",
                    "Module for ingest processors that do not require additional security "
                    "permissions or have large dependencies and resources",
                    "org.opensearch.ingest.common.IngestCommonModulePlugin"
                    if self.major >= 3
                    else "org.opensearch.ingest.common.IngestCommonPlugin",
                    (
                        f"org.opensearch.plugin:ingest-common:{v}",
                        f"org.opensearch:opensearch-grok:{v}",
                        f"org.opensearch:opensearch-dissect:{v}",
                        "org.jruby.joni:joni:2.2.1",
                        "org.jruby.jcodings:jcodings:1.0.61",
                    ),
                    extended_plugins="lang-painless",
                )
            )
        return tuple(mods)

    @property
    def has_ingest_processors(self) -> bool:
        """Whether its nodes run ingest pipelines' processors (``set``, ``remove``, ``drop`` ...):
        OpenSearch yes (``ingest-common``), Elasticsearch 7 no (not on Maven Central)."""
        return any(m.name == "ingest-common" for m in self.modules)

    @property
    def java_version(self) -> str:
        """The ``java.version`` its modules' descriptors declare."""
        if self.family == "elasticsearch":
            return "1.8"
        return "21" if self.major >= 3 else "11"

    @property
    def needs_java21(self) -> bool:
        return self.family == "opensearch" and self.major >= 3

    @property
    def binary(self) -> str:
        return self.family  # bin/elasticsearch, bin/opensearch

    @property
    def env_prefix(self) -> str:
        """``ES_`` / ``OPENSEARCH_``: the launcher's variables (PATH_CONF, JAVA_HOME, ...)."""
        return "ES_" if self.family == "elasticsearch" else "OPENSEARCH_"

    @property
    def config_file(self) -> str:
        return f"{self.family}.yml"


def parse_dist(text: str) -> Dist:
    """``"opensearch-2.19.6"`` to a Dist; a clear ValueError for anything else."""
    family, sep, version = text.strip().partition("-")
    parts = version.split(".")
    if not sep or family not in ("elasticsearch", "opensearch") or len(parts) != 3:
        raise ValueError(
            f"ESTROM_ENGINE_DIST must be <family>-<x.y.z> with family elasticsearch or opensearch "
            f"(e.g. {', '.join(TESTED_DISTS)}), not {text!r}"
        )
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"ESTROM_ENGINE_DIST version must be x.y.z, not {version!r}")
    dist = Dist(family, version)
    if family == "elasticsearch" and dist.major != 7:
        # 8.x and later publish no percolator module (README "Supported engines").
        raise ValueError(
            f"ESTROM_ENGINE_DIST={text}: only Elasticsearch 7.x ships a percolator module on Maven Central"
        )
    if family == "opensearch" and dist.major not in (2, 3):
        raise ValueError(f"ESTROM_ENGINE_DIST={text}: estrom runs OpenSearch 2.x and 3.x")
    return dist


def selected_dist() -> Dist:
    """The distribution ``ESTROM_ENGINE_DIST`` names (default: Elasticsearch 7.17.29)."""
    return parse_dist(os.environ.get("ESTROM_ENGINE_DIST") or DEFAULT_DIST)


def _module_descriptor(dist: Dist, module: Module) -> str:
    lines = {
        "description": module.description,
        "version": dist.version,
        "name": module.name,
        "classname": module.classname,
        "java.version": dist.java_version,
        f"{dist.family}.version": dist.version,
        "extended.plugins": module.extended_plugins,
        "has.native.controller": "false",
    }
    if dist.family == "elasticsearch":
        lines["type"] = "isolated"
    else:
        lines["custom.foldername"] = ""
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def _jvm_options(dist: Dist, home: Path) -> str:
    """The JVM flags: GC logs to a relative path in the stock jvm.options break as
    soon as the working directory is not the distribution's; warnings to stderr suffice."""
    tmp = "${" + dist.env_prefix + "TMPDIR}"
    opts = [
        "-XX:+UseG1GC",
        f"-Djava.io.tmpdir={tmp}",
        "-XX:+ExitOnOutOfMemoryError",
        "-Xlog:disable",
        "-Xlog:all=warning:stderr:utctime,level,tags",
    ]
    if dist.needs_java21:
        # OpenSearch 3's stock options: its agent replaces the security manager.
        opts += [
            f"-javaagent:{home}/agent/opensearch-agent.jar",
            "--add-opens=java.base/java.nio=ALL-UNNAMED",
            "--add-modules=jdk.incubator.vector",
            "-Dorg.apache.lucene.store.MMapDirectory.sharedArenaMaxPermits=1",
        ]
    return "\n".join(opts) + "\n"


def _progress(msg: str) -> None:
    print(f"[estrom-engine] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where the assembled engines live; readable by the unprivileged engine user."""
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
    parts = artifact.split(":")
    ext = parts[3] if len(parts) > 3 else "jar"
    found = dest / f"{parts[1]}-{parts[2]}.{ext}"
    if found.exists():
        return found
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
    if not found.exists():
        raise RuntimeError(f"mvn did not produce {found}")
    return found


def _dist_of(spec: str | Dist | None) -> Dist:
    if spec is None:
        return selected_dist()
    if isinstance(spec, Dist):
        return spec
    # A bare version (the old signature) is an Elasticsearch version.
    return parse_dist(spec if "-" in spec and not spec[0].isdigit() else f"elasticsearch-{spec}")


def _marker(dist: Dist) -> dict[str, object]:
    """What ``.estrom-ready`` holds: JSON, so that a reader of the older plain-text marker
    (the dist's name) falls back to the directory's name instead of misreading it."""
    return {"dist": dist.name, "layout": LAYOUT, "modules": [m.name for m in dist.modules]}


def _read_marker(home: Path) -> dict[str, object] | None:
    """The marker's content (``{"dist": <name>}`` for a layout-1 plain-text one); None when absent."""
    try:
        text = (home / MARKER).read_text().strip()
    except FileNotFoundError:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return {"dist": text}  # layout 1: the dist's name alone
    return found if isinstance(found, dict) else {}


def _is_ready(home: Path, dist: Dist) -> bool:
    found = _read_marker(home)
    return found is not None and found.get("layout") == LAYOUT and found.get("dist") == dist.name


def _install_module(dist: Dist, module: Module, unpacked: Path, downloads: Path) -> None:
    """``modules/<name>``: the fetched jars and a descriptor, unless the distribution carries it."""
    target = unpacked / "modules" / module.name
    if (target / "plugin-descriptor.properties").exists():
        return  # the engine's own module (OpenSearch 3's integ-test zip)
    jars = [_mvn_copy(artifact, downloads) for artifact in module.artifacts]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for jar in jars:
        shutil.copy2(jar, target / jar.name)
    (target / "plugin-descriptor.properties").write_text(_module_descriptor(dist, module))
    if module.policy:
        (target / "plugin-security.policy").write_text(module.policy)


def ensure_engine(dist: str | Dist | None = None) -> Path:
    """Return the home of an assembled engine (``ESTROM_ENGINE_DIST`` by default), assembling it once.

    A home assembled with another ``LAYOUT`` (an older module set) is assembled again; the new
    tree is built aside and swapped in by two renames, so a node running from the old one keeps
    its open files."""
    d = _dist_of(dist)
    root = cache_dir()
    home = root / d.name
    if _is_ready(home, d):
        return home
    with _locked(root / f".lock-{d.name}"):
        if _is_ready(home, d):
            return home
        downloads = root / "downloads"
        dist_zip = _mvn_copy(d.dist_artifact, downloads)
        staging = Path(tempfile.mkdtemp(prefix="assemble-", dir=root))
        old = _read_marker(home)
        why = "" if old is None else f" (the cache there has layout {old.get('layout', 1)}, not {LAYOUT})"
        _progress(f"assembling {d.name} in {home} with modules {', '.join(m.name for m in d.modules)}{why}")
        with zipfile.ZipFile(dist_zip) as zf:
            zf.extractall(staging)
        unpacked = staging / d.name
        for module in d.modules:
            _install_module(d, module, unpacked, downloads)
        for path in [unpacked, *unpacked.rglob("*")]:
            mode = path.stat().st_mode
            # zipfile drops the executable bits; the launcher scripts need them.
            if path.is_dir() or path.parent.name == "bin":
                path.chmod(mode | 0o755)
            else:
                path.chmod(mode | 0o644)
        (unpacked / MARKER).write_text(json.dumps(_marker(d)) + "\n")
        if home.exists():
            home.rename(staging / "replaced")
        unpacked.rename(home)
        shutil.rmtree(staging, ignore_errors=True)
        root.chmod(root.stat().st_mode | 0o755)
    return home


def dist_of_home(home: Path) -> Dist:
    """Which distribution an assembled home holds (its marker, else its directory name)."""
    found = _read_marker(home) or {}
    text = str(found.get("dist", ""))
    if not text.startswith(("elasticsearch-", "opensearch-")):
        text = home.name  # caches assembled before the marker named the dist
    return parse_dist(text)


def ensure_engine_user() -> str | None:
    """The user the engine runs as: a dedicated system user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(ENGINE_USER)
    except KeyError:
        _progress(f"creating system user {ENGINE_USER}")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ENGINE_USER],
            check=True,
        )
    return ENGINE_USER


def java_home(dist: Dist | None = None) -> str:
    """A JDK the engine accepts: 17 for Elasticsearch 7 and OpenSearch 2, 21+ for OpenSearch 3."""
    d = dist or selected_dist()
    configured = os.environ.get("ESTROM_ENGINE_JAVA_HOME")
    if configured:
        return configured
    candidates = JAVA21_PLUS if d.needs_java21 else JAVA17
    for candidate in candidates:
        if Path(candidate, "bin", "java").exists():
            return candidate
    if d.needs_java21:
        raise RuntimeError(f"{d.name} needs Java 21 or later: set ESTROM_ENGINE_JAVA_HOME")
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no Java found: set ESTROM_ENGINE_JAVA_HOME")
    return str(Path(java).resolve().parent.parent)


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
        (conf / "jvm.options").write_text(_jvm_options(dist, self.home))
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


def main(argv: list[str]) -> None:
    """``python -m devstack.engine [DIST ...]``: provision the cache (used by scripts/bootstrap).

    Without arguments, the distribution ``ESTROM_ENGINE_DIST`` names; ``all``:
    every distribution the test matrix runs.
    """
    wanted = list(TESTED_DISTS) if argv == ["all"] else (argv or [selected_dist().name])
    for name in wanted:
        print(ensure_engine(parse_dist(name)))


if __name__ == "__main__":
    main(sys.argv[1:])
