"""Assemble an engine distribution from Maven Central once, into a cache outside the repository.

Maven Central publishes each family's stripped server distribution
(``integ-test-zip``) and its modules' jars separately: ``mvn`` fetches them
into ``<cache>/downloads`` and they are assembled into ``<cache>/<dist>``.

The cache's marker (``.estrom-ready``) records the layout (``LAYOUT``, the
modules): a cache assembled with another module set is assembled again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from devstack.engine_dists import Dist, Module, parse_dist, selected_dist

#: The assembled cache's layout: bumped whenever what ``ensure_engine`` installs changes,
#: so a cache assembled before is assembled again (1: the percolator alone, no layout recorded;
#: 2: + mapper-extras, + ingest-common on OpenSearch 2, the zip's own modules kept;
#: 3: + lang-painless on OpenSearch 2, which ingest-common extends).
LAYOUT = 3
MARKER = ".estrom-ready"


def _module_descriptor(dist: Dist, module: Module) -> str:
    """The ``plugin-descriptor.properties`` the engine needs to load a module it did not ship with."""
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


def progress(msg: str) -> None:
    """Say what provisioning does, on stderr: stdout carries only the engine homes scripts read."""
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
    progress(f"fetching {artifact} with mvn")
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
        progress(f"assembling {d.name} in {home} with modules {', '.join(m.name for m in d.modules)}{why}")
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
