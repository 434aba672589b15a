"""Filebeat 7.17 (its OSS build), configured as its documentation shows, pointed at the beater.

``scripts/filebeat`` builds the binary from the Go module
``github.com/elastic/beats/v7`` (``scripts/test`` runs it) into the cache
outside git. Filebeat runs with a configuration of its own: a ``filestream``
input follows a file with the ``ndjson`` parser (each line's keys at the top
of the event), and the default ``elasticsearch`` output has the beater as
its only host, the rest at its defaults: the index
``filebeat-7.17.28-<date>``, its composable template ``filebeat-7.17.28``
loaded when it connects (``HEAD``, then ``PUT /_index_template/...``), ILM
``auto`` (asked of ``GET /_xpack``: off, the engine here has no ILM). Its
start-up requests (``GET /``, ``GET /_license``, ``GET /_xpack``, the
template's) and its bulks go through the beater. Twice: to the session's
beater, which takes anonymous writes on loopback, and to a beater whose
access file names a writer of ``filebeat-*``, with the output's
``username``/``password`` (HTTP Basic, docs/security.md).

One deviation, for the engine, not the beater: Filebeat's template maps
``data_stream.*`` as ``constant_keyword`` and ``*.elf.exports``/``imports``
as ``flattened``, x-pack mappers the provisioned Elasticsearch 7.17 lacks
(not on Maven Central: README "Supported engines"); Filebeat then retries its
connection forever (``No handler for type [constant_keyword]``,
elastic/beats#26191). Where the engine refuses those types, the test loads
the template Filebeat itself exports for the engine (``filebeat export
template``) with those fields as ``keyword`` and a disabled ``object``,
through Filebeat's documented ``setup.template.json`` settings, so Filebeat
still checks and loads it through the beater.

Every line written to the file reaches a live tail of ``filebeat-*`` (the
tailor's NDJSON tail and a WAMP subscriber of ``com.estrom.register_query``),
once, and is stored in the engine. Filebeat's own log (``-e``) is kept in
``test-artifacts/shippers/``.

On OpenSearch it is skipped: Filebeat 7.17 asks ``GET /_license`` when it
connects, OpenSearch answers 400, and Filebeat retries forever ("could not
connect to a compatible version of Elasticsearch").

Without the binary the test is skipped with the reason, unless
``ESTROM_TEST_REQUIRE_SHIPPERS`` is set (then it fails).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common.access.tokens import token_hash
from devstack.engine import cache_dir
from devstack.wamp_client import WampClient
from tests.bulk.streaming_bulk_case import engine_family
from tests.http_client import engine_request, http
from tests.real_stack import ARTIFACTS, EngineHandle, ServiceHandle, StartService
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

VERSION = os.environ.get("ESTROM_FILEBEAT_VERSION", "7.17.28")
LINES = 20
JSON = {"content-type": "application/json"}
#: Filebeat picks up appended lines after its reader's backoff (at most 10 s by default) and
#: sends within its queue's 1 s flush: a busy 2-core machine is given much more than that.
DELIVERY_TIMEOUT = 120.0

# From Filebeat's documentation ("filestream input", its "ndjson" parser; "Configure the
# Elasticsearch output"), with the path, the host and Filebeat's own directories set for this test.
CONFIG = """
filebeat.inputs:
  - type: filestream
    id: estrom-app-log
    paths:
      - {follow}
    parsers:
      - ndjson:
          target: ""
          overwrite_keys: true
          add_error_key: true

output.elasticsearch:
  hosts: ["{host}"]{credentials}

path.data: {data}
path.logs: {logs}
"""

# Filebeat's "Configure Elasticsearch index template loading": a template of one's own (its
# type said again: with ``json.enabled`` Filebeat 7.17 defaults to a legacy template).
TEMPLATE_JSON = """
setup.template.type: index
setup.template.json.enabled: true
setup.template.json.path: {path}
setup.template.json.name: filebeat-{version}
"""

#: What Filebeat's template maps with Elasticsearch's x-pack mappers, and what stands in for it.
XPACK_MAPPERS = {"constant_keyword": {"type": "keyword"}, "flattened": {"type": "object", "enabled": False}}


def filebeat_binary() -> Path:
    """The binary scripts/filebeat builds (``ESTROM_TEST_FILEBEAT`` names another)."""
    configured = os.environ.get("ESTROM_TEST_FILEBEAT")
    return Path(configured) if configured else cache_dir() / f"filebeat-{VERSION}" / "filebeat"


def engine_refuses_xpack_mappers(engine_url: str) -> bool:
    """Whether the engine refuses an index mapping Filebeat's ``constant_keyword`` and ``flattened``."""
    probe = f"probe-xpack-mappers-{uuid.uuid4().hex[:12]}"
    mappings = {"properties": {name: {"type": name} for name in XPACK_MAPPERS}}
    resp = http("PUT", f"{engine_url}/{probe}", json.dumps({"mappings": mappings}), JSON)
    if resp.status < 300:
        engine_request(engine_url, "DELETE", f"/{probe}")
        return False
    assert resp.status == 400, resp.body
    return True


def without_xpack_mappers(node: Any) -> Any:
    """The template with every ``constant_keyword`` and ``flattened`` field replaced (``XPACK_MAPPERS``)."""
    if isinstance(node, dict):
        kind = node.get("type")  # a field's type, or a field named "type" (agent.type ...)
        if isinstance(kind, str) and kind in XPACK_MAPPERS:
            return dict(XPACK_MAPPERS[kind])
        return {k: without_xpack_mappers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [without_xpack_mappers(v) for v in node]
    return node


def exported_template(binary: Path, conf: Path, home: Path, engine_url: str) -> Path:
    """``filebeat export template`` for the engine's version, without the x-pack mappers.

    Exported with ILM off, as Filebeat's ``auto`` resolves it on engines without ILM (the
    exported template would otherwise carry ``index.lifecycle.*`` settings they refuse)."""
    version = engine_request(engine_url, "GET", "/")["version"]["number"]
    argv = [str(binary), "export", "template", "-c", str(conf), "--path.home", str(home)]
    exported = subprocess.run(
        [*argv, "--es.version", version, "-E", "setup.ilm.enabled=false"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    path = home / "template.json"
    path.write_text(json.dumps(without_xpack_mappers(json.loads(exported.stdout))))
    return path


@dataclass
class Target:
    """The beater Filebeat writes to, and the writer it is there (none: an anonymous writer)."""

    url: str
    username: str = ""
    password: str = ""

    def credentials(self) -> str:
        """The output's ``username``/``password`` lines (HTTP Basic: the beater's writer and token)."""
        if not self.username:
            return ""
        return f"\n  username: {json.dumps(self.username)}\n  password: {json.dumps(self.password)}"


@pytest.fixture(scope="session")
def filebeat_binary_or_skip() -> Path:
    """The binary; without it, skip (fail with ``ESTROM_TEST_REQUIRE_SHIPPERS``) before any process starts."""
    binary = filebeat_binary()
    if not binary.exists():
        reason = f"{binary} is missing: scripts/filebeat builds Filebeat {VERSION} (scripts/test runs it)"
        if os.environ.get("ESTROM_TEST_REQUIRE_SHIPPERS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@pytest.fixture(params=["anonymous", "writer"])
def target(
    request: pytest.FixtureRequest, beater: ServiceHandle, start_beater: StartService, tmp_path: Path
) -> Target:
    """The session's beater, anonymous writes allowed on loopback; or a beater of its own whose
    access file names one writer, ``filebeat``, of ``filebeat-*`` (docs/security.md)."""
    if request.param == "anonymous":
        return Target(beater.url)
    token = "filebeat-token-" + uuid.uuid4().hex
    access = tmp_path / "access.json"
    writer = {"name": "filebeat", "token": token_hash(token), "targets": ["filebeat-*"]}
    access.write_text(json.dumps({"writers": [writer]}))
    return Target(start_beater(ESTROM_ACCESS=str(access)).url, "filebeat", token)


@dataclass
class Filebeat:
    follow: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def filebeat(
    filebeat_binary_or_skip: Path,
    tmp_path: Path,
    target: Target,
    engine: EngineHandle,
    request: pytest.FixtureRequest,
) -> Iterator[Filebeat]:
    """Filebeat following ``app.ndjson`` into ``target``; its log in test-artifacts/shippers/."""
    binary = filebeat_binary_or_skip
    if engine_family(engine) != "elasticsearch":
        # Seen on OpenSearch 2.19.6: "could not connect to a compatible version of Elasticsearch:
        # 400 Bad Request: ... Invalid index name [_license]", retried forever.
        pytest.skip("Filebeat 7.17 refuses OpenSearch: its GET /_license is answered 400 there")
    follow = tmp_path / "app.ndjson"
    follow.write_text("")
    home = tmp_path / "filebeat"
    home.mkdir()
    conf = home / "filebeat.yml"
    config = CONFIG.format(
        follow=follow,
        host=target.url,
        credentials=target.credentials(),
        data=home / "data",
        logs=home / "logs",
    )
    conf.write_text(config)
    conf.chmod(0o600)  # Filebeat refuses a configuration others may write
    if engine_refuses_xpack_mappers(engine.url):
        template = exported_template(binary, conf, home, engine.url)
        conf.write_text(config + TEMPLATE_JSON.format(path=template, version=VERSION))
    check = subprocess.run(
        [str(binary), "test", "config", "-c", str(conf), "--path.home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # Each run loads the template itself (HEAD answered 404, then PUT), whichever ran before.
    http("DELETE", f"{engine.url}/_index_template/filebeat-{VERSION}")
    logs = ARTIFACTS / "shippers"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"filebeat-{request.node.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "-e", "-c", str(conf), "--path.home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Filebeat(follow, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_lines_of_a_followed_file_are_tailed_live_and_stored(
    filebeat_binary_or_skip: Path,
    filebeat: Filebeat,
    tailor: ServiceHandle,
    wamp: WampClient,
    engine: EngineHandle,
) -> None:
    run = uuid.uuid4().hex  # this run's documents, whatever else filebeat-* holds
    query = f"run:{run}"
    sid = wamp.call("com.estrom.register_query", "filebeat-*", query)
    sink = wamp.subscribe(f"docs-for-{sid}")
    tail = Tail(tailor.url, {"i": "filebeat-*", "q": query, "format": "ndjson"})
    try:
        assert tail.status == 200, tail.body
        with filebeat.follow.open("a") as f:
            for n in range(LINES):
                f.write(json.dumps({"run": run, "n": n, "level": "info", "message": f"line {n}"}) + "\n")
        try:
            hits = tail.wait_hits(LINES, timeout=DELIVERY_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nFilebeat's log (last 4000 characters):\n{filebeat.log_text()[-4000:]}"
            ) from None
    finally:
        tail.close()
    published = sink.wait_for_count(LINES, timeout=DELIVERY_TIMEOUT)

    for what, got in (("the tail", hits), (f"docs-for-{sid}", published)):
        twice = sorted(n for n, k in Counter(h["_source"]["n"] for h in got).items() if k > 1)
        assert not twice, (
            f"{what}: lines {twice} delivered more than once ({len(got)} hits for {LINES} lines)"
        )
        assert sorted(h["_source"]["n"] for h in got) == list(range(LINES))
        assert {h["_source"]["message"] for h in got} == {f"line {n}" for n in range(LINES)}
    for h in hits:
        source = h["_source"]
        # Filebeat's defaults: its daily index, its event fields around the line's own keys.
        assert h["_index"].startswith(f"filebeat-{VERSION}-"), h["_index"]
        assert source["log"]["file"]["path"] == str(filebeat.follow)
        assert source["input"]["type"] == "filestream"
        assert source["agent"]["type"] == "filebeat"
        assert source["agent"]["version"] == VERSION
        assert "error" not in source, source["error"]
    assert {h["_id"] for h in published} == {h["_id"] for h in hits}

    # The beater publishes only what the engine stored: every line is there, once.
    engine_request(engine.url, "POST", "/filebeat-*/_refresh")
    found = engine_request(engine.url, "GET", f"/filebeat-*/_search?size={2 * LINES}&q={query}")
    stored = {h["_id"]: h["_source"]["n"] for h in found["hits"]["hits"]}
    assert stored == {h["_id"]: h["_source"]["n"] for h in hits}
    assert engine_request(engine.url, "GET", f"/filebeat-*/_count?q={query}")["count"] == LINES

    # Its start-up went through the beater: the template it loaded is the engine's now, and
    # the daily index it wrote into has the template's mapping (scaled_float: mapper-extras).
    templates = engine_request(engine.url, "GET", f"/_index_template/filebeat-{VERSION}")["index_templates"]
    assert [t["index_template"]["index_patterns"] for t in templates] == [[f"filebeat-{VERSION}-*"]]
    log = filebeat.log_text()
    assert f'Template with name "filebeat-{VERSION}" loaded.' in log, log[-4000:]
    daily = hits[0]["_index"]
    field = engine_request(engine.url, "GET", f"/{daily}/_mapping/field/host.cpu.usage")
    assert field[daily]["mappings"]["host.cpu.usage"]["mapping"]["usage"]["type"] == "scaled_float"
