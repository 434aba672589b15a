"""What an engine node runs as and with: its unprivileged user, its JDK and its JVM flags.

Neither engine runs as root: when we are root, nodes run as a dedicated system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from devstack.engine_cache import progress
from devstack.engine_dists import Dist, selected_dist

ENGINE_USER = "estrom-engine"
JAVA17 = ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk")
#: OpenSearch 3 is built for Java 21; the machine carries a Temurin 25 beside Java 17.
JAVA21_PLUS = ("/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/temurin-21-jdk-amd64")


def jvm_options(dist: Dist, home: Path) -> str:
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


def ensure_engine_user() -> str | None:
    """The user the engine runs as: a dedicated system user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(ENGINE_USER)
    except KeyError:
        progress(f"creating system user {ENGINE_USER}")
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
