"""rsyslog's omelasticsearch, configured as its documentation shows, pointed at the beater.

Debian's ``rsyslog`` and ``rsyslog-elasticsearch`` (scripts/bootstrap
installs them, as root). rsyslogd runs in the foreground with a
configuration of its own: ``imfile`` follows a file, ``omelasticsearch``
sends it in bulk mode to the beater as if it were the engine. Lines written
to the file appear in a live tail and are stored in the engine.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http_client import engine_request
from tests.real_stack import EngineHandle, ServiceHandle
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

RSYSLOGD = os.environ.get("ESTROM_TEST_RSYSLOGD", "/usr/sbin/rsyslogd")

# From the omelasticsearch documentation (rsyslog.com/doc, "omelasticsearch: Elasticsearch
# Output Module", the bulk-mode example), with server, port and index set for this test;
# searchType is "_doc", the one mapping type Elasticsearch 7 has.
CONFIG = """
global(workDirectory="{work}")
module(load="imfile")
module(load="omelasticsearch")
template(name="testTemplate"
         type="list"
         option.json="on") {{
           constant(value="{{")
             constant(value="\\"timestamp\\":\\"")      property(name="timereported" dateFormat="rfc3339")
             constant(value="\\",\\"message\\":\\"")     property(name="msg")
             constant(value="\\",\\"host\\":\\"")        property(name="hostname")
             constant(value="\\",\\"severity\\":\\"")    property(name="syslogseverity-text")
             constant(value="\\",\\"facility\\":\\"")    property(name="syslogfacility-text")
             constant(value="\\",\\"syslogtag\\":\\"")   property(name="syslogtag")
           constant(value="\\"}}")
         }}
input(type="imfile" File="{follow}" Tag="app:")
action(type="omelasticsearch"
       server="{host}"
       serverport="{port}"
       template="testTemplate"
       searchIndex="{index}"
       searchType="_doc"
       bulkmode="on"
       maxbytes="100m"
       queue.type="linkedlist"
       queue.size="5000"
       queue.dequeuebatchsize="300"
       action.resumeretrycount="-1")
"""


@pytest.fixture
def rsyslog(tmp_path: Path, beater: ServiceHandle, index: str) -> Iterator[Path]:
    """rsyslogd following ``app.log`` into the beater's bulk API; yields the followed file."""
    if not Path(RSYSLOGD).exists():
        pytest.fail(f"{RSYSLOGD} is missing: scripts/bootstrap installs rsyslog and rsyslog-elasticsearch")
    follow = tmp_path / "app.log"
    follow.write_text("")
    work = tmp_path / "work"
    work.mkdir()
    url = urllib.parse.urlsplit(beater.url)
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(CONFIG.format(work=work, follow=follow, host=url.hostname, port=url.port, index=index))
    check = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    log = (tmp_path / "rsyslogd.out").open("w")
    proc = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield follow
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_lines_of_a_followed_file_are_tailed_live_and_stored(
    rsyslog: Path, tailor: ServiceHandle, engine: EngineHandle, index: str
) -> None:
    engine_request(engine.url, "PUT", f"/{index}", {})
    tail = Tail(tailor.url, {"i": index, "q": "message:estrom*", "format": "ndjson"})
    try:
        assert tail.status == 200
        with rsyslog.open("a") as f:
            for n in range(5):
                f.write(f"estrom-line-{n} something happened\n")
        hits = tail.wait_hits(5, timeout=60)
    finally:
        tail.close()
    messages = [h["_source"]["message"] for h in hits]
    assert messages == [f"estrom-line-{n} something happened" for n in range(5)]
    assert all(h["_index"] == index and h["_id"] for h in hits)
    assert {h["_source"]["syslogtag"] for h in hits} == {"app:"}
    # The beater publishes only after the engine answered the bulk: stored already.
    engine_request(engine.url, "POST", f"/{index}/_refresh")
    found = engine_request(engine.url, "GET", f"/{index}/_search?size=10")
    stored = {h["_id"]: h["_source"]["message"] for h in found["hits"]["hits"]}
    assert stored == {h["_id"]: h["_source"]["message"] for h in hits}
