"""docker-compose.yml and the Dockerfile, built and run on a real container engine.

In file order, against one deployment on the contract's default ports: build
as ``docker compose build`` does; ``up -d --wait``; use it through the
published ports only (WAMP, ingest, tails, the page, health and metrics);
restart the router and the engine containers; ``down`` then ``up`` (queries
survive on the volume); two beaters and two tailors behind nginx; ``down -v``.
Figures (image sizes, time from ``up`` to healthy) are printed, not asserted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.wamp_client import WampClient
from tests.browser_page import LiveView
from tests.deploy.compose import REPO, SCALE_FILE
from tests.deploy.conftest import Deployment
from tests.faults.delivery import numbers, run_sender
from tests.faults.test_router_restart import has_gap, split_at_gap
from tests.http_client import engine_request, http, ingest
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until

pytestmark = pytest.mark.deploy

ROUTER = "ws://127.0.0.1:8080/ws"
PAGE = "http://127.0.0.1:8080/"
BEATER = "http://127.0.0.1:8081"
TAILOR = "http://127.0.0.1:8082"
ENGINE = "http://127.0.0.1:9200"
SERVICES = ("elasticsearch", "router", "beater", "tailor")
INDEX = "deploy-events"


def healthy(deployment: Deployment, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """Each container of ``services``: its health status (the engine's own health checks)."""
    states = {}
    for service in services:
        for container in deployment.containers(service):
            container.reload()
            states[container.name] = container.attrs["State"].get("Health", {}).get("Status", "none")
    return states


def register(wamp: WampClient, index: str, query: str) -> str:
    """``register_query``, retried while it answers ``unavailable``, as the contract tells clients to.

    A fresh engine on a busy machine may take longer than the beater's engine
    timeout to create a percolator index; the next try finds it.
    """
    deadline = time.monotonic() + 90
    while True:
        try:
            return wamp.call("com.estrom.register_query", index, query)
        except ApplicationError as exc:
            if exc.error != "com.estrom.error.unavailable" or time.monotonic() > deadline:
                raise
            time.sleep(1)


def run_in(deployment: Deployment, image: str, command: list[str]) -> str:
    out = deployment.client.containers.run(image, command, remove=True, stderr=True)
    return out.decode()


def warnings_in_logs(deployment: Deployment, service: str) -> list[str]:
    lines = []
    for container in deployment.containers(service):
        for line in container.logs().decode().splitlines():
            if '"level": "warn' in line or '"level": "error' in line or '"level": "critical' in line:
                lines.append(line)
    return lines


@pytest.mark.timeout(1800)
def test_build_as_compose_does(deployment: Deployment) -> None:
    started = time.monotonic()
    deployment.compose.run("build", timeout=1700)
    print(f"docker compose build: {time.monotonic() - started:.0f} s")
    images = {
        name: deployment.client.images.get(name) for name in ("estrom-router:0.1.0", "estrom-services:0.1.0")
    }
    base = deployment.client.images.get(deployment.compose.env["ESTROM_PYTHON_IMAGE"])
    print(f"base (stand-in python:3.11-slim): {base.attrs['Size'] / 1e6:.0f} MB")
    for name, image in images.items():
        print(f"{name}: {image.attrs['Size'] / 1e6:.0f} MB")
        assert image.attrs["Config"]["User"] == "10001", name
        # No secret is baked in: the image's environment names none.
        assert not [e for e in image.attrs["Config"]["Env"] if "SECRET" in e or "TOKEN" in e], name
        # No compilers, npm or pip in a final image.
        found = run_in(
            deployment, name, ["sh", "-c", "for t in gcc cc npm node pip pip3; do command -v $t; done; true"]
        )
        assert found.strip() == "", f"{name} has {found.split()}"
    # The services image holds none of crossbar's tree.
    out = run_in(
        deployment,
        "estrom-services:0.1.0",
        [
            "python",
            "-c",
            "import importlib.util as u; print(u.find_spec('crossbar') is None, u.find_spec('beater') is None)",
        ],
    )
    assert out.split() == ["True", "False"], out


@pytest.mark.timeout(600)
def test_up_wait_every_service_healthy(deployment: Deployment) -> None:
    started = time.monotonic()
    deployment.compose.run("up", "-d", "--wait")
    print(f"docker compose up -d --wait: all healthy after {time.monotonic() - started:.1f} s")
    states = healthy(deployment)
    assert sorted(states) == [f"estrom-{s}-1" for s in sorted(SERVICES)]
    assert set(states.values()) == {"healthy"}, states
    for service in ("router", "beater", "tailor"):
        container = deployment.container(service)
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True, service
        assert container.attrs["Config"]["User"] == "10001", service
        # Only the contract's port, only on the host's loopback.
        bindings = {p: [(b["HostIp"], b["HostPort"]) for b in v] for p, v in host["PortBindings"].items()}
        assert list(bindings.values()) == [[("127.0.0.1", str(int(next(iter(bindings))[:4])))]], bindings
    # The first, normal connection to the router is no warning.
    for service in ("beater", "tailor"):
        assert warnings_in_logs(deployment, service) == [], service


def test_used_through_the_published_ports(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:8]
    # Stored documents for the n= backfill, written as Logstash's elasticsearch output would.
    for i in range(3):
        engine_request(ENGINE, "PUT", f"/{INDEX}/_doc/old-{run}-{i}?refresh=true", {"run": run, "n": 100 + i})
    wamp = WampClient(ROUTER)
    try:
        sid = register(wamp, INDEX, f"run:{run}")
        assert re.fullmatch(r"[0-9a-f]{16}", sid)
        sink = wamp.subscribe(f"docs-for-{sid}")
        endless = Tail(TAILOR, {"i": INDEX, "q": f"run:{run}"})
        backfill = Tail(TAILOR, {"i": INDEX, "q": f"run:{run}", "n": 3, "format": "ndjson"})
        assert endless.status == 200
        assert backfill.status == 200
        backfill.wait_hits(3)
        # Tails register their subscription before answering; post once both follow.
        resp = ingest(BEATER, INDEX, [{"run": run, "n": i} for i in range(5)])
        assert resp.status == 200, resp.body
        assert resp.json()["accepted"] == 5
        assert resp.json()["rejected"] == []
        assert numbers(sink.wait_for_count(5)) == list(range(5))
        assert numbers(endless.wait_hits(5)) == list(range(5))
        assert sorted(numbers(backfill.wait_hits(8))[:3]) == [100, 101, 102]
        assert numbers(backfill.hits[3:]) == list(range(5))
        assert not endless.ended  # the tail never ends on its own
        endless.close()
        backfill.close()
    finally:
        wamp.close()
    for base in (BEATER, TAILOR):
        health = http("GET", base + "/healthz")
        assert health.status == 200, health.body
        metrics = http("GET", base + "/metrics")
        assert metrics.status == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert b"estrom_" in metrics.body


def test_the_page_shows_live_hits(deployment: Deployment, browser_context) -> None:
    run = uuid.uuid4().hex[:8]
    view = LiveView(browser_context.new_page(), 8080).open()
    view.follow(INDEX, f"run:{run}")
    view.wait_sid()
    resp = ingest(BEATER, INDEX, [{"run": run, "n": i, "message": f"live {i}"} for i in range(3)])
    assert resp.status == 200, resp.body
    wait_until(lambda: len(view.row_docs()) == 3, 20, "three rows on the page")
    assert all(run in doc for doc in view.row_docs())
    view.screenshot("deploy-live-view")


@pytest.mark.timeout(600)
def test_router_restart_rejoin_nothing_acknowledged_lost(deployment: Deployment) -> None:
    """Acknowledged before the restart: in the tail; after it: delivered to a tail opened then.

    The open NDJSON tail either says ``gap`` and carries on, or, when the
    router takes longer than ``ESTROM_TAILOR_ROUTER_WAIT`` (60 s) to come
    back (a busy machine), ends with its documented ``router_unavailable``.
    """
    run = uuid.uuid4().hex[:8]
    params = {"i": INDEX, "q": f"run:{run}", "format": "ndjson"}
    tail = Tail(TAILOR, params)
    sender = run_sender(BEATER, INDEX, run, timeout=15.0).start()
    try:
        sender.wait(lambda s: len(s.acked) >= 3, 60, "3 batches acknowledged")
        deployment.container("router").restart(timeout=10)
        acked_before = {n for b in list(sender.stats.acked)[:3] for n in sender.stats.batches[b]}
        tail.wait(lambda t: has_gap(t) or t.ended, 120, "a gap notice or the tail's end")
        wait_until(lambda: set(healthy(deployment).values()) == {"healthy"}, 240, "all healthy again")
        after = Tail(TAILOR, params)
        boundary = len(sender.stats.batches)
        sender.wait(lambda s: len([b for b in s.acked if b >= boundary]) >= 3, 60, "acks after the restart")
    finally:
        sender.stop()
    acked_after = {n for b in sender.stats.acked if b >= boundary for n in sender.stats.batches[b]}
    after.wait(lambda t: acked_after <= set(numbers(t.hits)), 30, "hits acknowledged after the restart")
    if has_gap(tail):
        before, gaps, _after = split_at_gap(tail)
        assert "router" in gaps[0]["reason"]
    else:
        before = tail.hits
        assert tail.lines[-1]["error"] == "router_unavailable", tail.lines[-1]
    assert acked_before <= set(numbers(before))
    tail.close()
    after.close()
    assert {a.outcome for a in sender.stats.attempts} <= {
        "200",
        "503",
        "refused",
        "reset",
        "closed",
        "timeout",
    }


@pytest.mark.timeout(600)
def test_engine_restart_recovers(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:8]
    wamp = WampClient(ROUTER)
    try:
        sid = register(wamp, INDEX, f"run:{run}")
        sink = wamp.subscribe(f"docs-for-{sid}")
        sender = run_sender(BEATER, INDEX, run, timeout=15.0).start()
        try:
            sender.wait(lambda s: len(s.acked) >= 2, 30, "2 batches acknowledged")
            deployment.container("elasticsearch").restart(timeout=30)
            wait_until(lambda: set(healthy(deployment).values()) == {"healthy"}, 240, "all healthy again")
            boundary = len(sender.stats.batches)
            sender.wait(
                lambda s: len([b for b in s.acked if b >= boundary]) >= 2, 60, "acks after the restart"
            )
        finally:
            sender.stop()
        # Every acknowledged document reached the subscriber: the session never broke.
        acked = sender.stats.acked_ids
        sink.wait_for(lambda hits: acked <= set(numbers(hits)), 30)
        outcomes = {a.outcome for a in sender.stats.attempts}
        assert outcomes <= {"200", "503"}, outcomes
    finally:
        wamp.close()


@pytest.mark.timeout(900)
def test_down_then_up_queries_survive(deployment: Deployment) -> None:
    wamp = WampClient(ROUTER)
    try:
        sid = register(wamp, INDEX, "kept:yes")
    finally:
        wamp.close()
    deployment.compose.run("down")
    assert deployment.containers() == []
    started = time.monotonic()
    deployment.compose.run("up", "-d", "--wait")
    print(
        f"docker compose up -d --wait (images built, volume kept): healthy after {time.monotonic() - started:.1f} s"
    )
    wamp = WampClient(ROUTER)
    try:
        described = wamp.call("com.estrom.describe_query", sid)
        assert described["sid"] == sid
        assert described["index"] == INDEX
    finally:
        wamp.close()


@pytest.mark.timeout(900)
def test_scaled_behind_nginx_every_hit_once_per_subscriber(deployment: Deployment) -> None:
    files = ["-f", "docker-compose.yml", "-f", SCALE_FILE]
    deployment.compose.run(*files, "up", "-d", "--wait", "--scale", "beater=2", "--scale", "tailor=2")
    assert len(deployment.containers("beater")) == 2
    assert len(deployment.containers("tailor")) == 2
    assert set(healthy(deployment).values()) == {"healthy"}
    run = uuid.uuid4().hex[:8]
    params = {"i": INDEX, "q": f"run:{run}", "format": "ndjson"}
    # Four tails through the proxy: nginx spreads them over both tailors.
    tails = [Tail(TAILOR, params) for _ in range(4)]
    wamp = WampClient(ROUTER)
    try:
        sid = register(wamp, INDEX, f"run:{run}")
        sink = wamp.subscribe(f"docs-for-{sid}")
        sent: list[int] = []
        for batch in range(10):  # through the proxy: both beaters take requests
            ids = list(range(batch * 10, batch * 10 + 10))
            resp = ingest(BEATER, INDEX, [{"run": run, "n": i} for i in ids])
            assert resp.status == 200, resp.body
            sent += ids
        assert sorted(numbers(sink.wait_for_count(len(sent)))) == sent
        for tail in tails:
            assert sorted(numbers(tail.wait_hits(len(sent)))) == sent
        # A marker after everything: nothing more (no duplicates) arrived before it.
        assert ingest(BEATER, INDEX, {"run": run, "n": 10**6}).status == 200
        for hits in [sink.wait_for_count(len(sent) + 1), *(t.wait_hits(len(sent) + 1) for t in tails)]:
            assert sorted(numbers(hits)) == [*sent, 10**6]
        for tail in tails:
            tail.close()
    finally:
        wamp.close()
    deployment.compose.run(*files, "down")


@pytest.mark.timeout(600)
def test_scripts_compose_up_in_the_foreground_until_sigterm(deployment: Deployment) -> None:
    deployment.compose.ran.append("scripts/compose up")
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "compose"), "up"],
        cwd=REPO,
        env={**os.environ, **deployment.secrets},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "all healthy after" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(300), "".join(lines[-40:])
        assert set(healthy(deployment).values()) == {"healthy"}
        assert http("GET", BEATER + "/healthz").status == 200
        assert http("GET", PAGE).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
        reader.join(10)
    assert rc == 0, "".join(lines[-40:])
    assert deployment.containers() == []


def test_down_v_leaves_nothing(deployment: Deployment) -> None:
    deployment.compose.run("up", "-d", "--wait")
    deployment.compose.run("down", "-v")
    assert deployment.containers() == []
    client = deployment.client
    assert client.volumes.list(filters={"label": "com.docker.compose.project=estrom"}) == []
    assert client.networks.list(filters={"label": "com.docker.compose.project=estrom"}) == []


def test_readme_commands_were_run(deployment: Deployment) -> None:
    """Every ``docker compose`` command of the README's deployment section ran above."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Deploying with Docker Compose", 1)[1].split("\n## ", 1)[0]
    shown = {
        " ".join(line.split("#", 1)[0].split())
        for block in re.findall(r"```(?:sh)?\n(.*?)```", section, re.S)
        for line in block.splitlines()
        if line.strip().startswith(("docker compose", "scripts/compose"))
        and "--profile demo" not in line  # Logstash: no image here, checked by parsing (unit tier)
    }
    not_run = shown - {" ".join(c.split()) for c in deployment.compose.ran}
    assert shown
    assert not not_run, f"README shows compose commands the tier never ran: {sorted(not_run)}"


def test_images_name_user_defaults() -> None:
    """The compose file names the images users get; only the environment swaps them for stand-ins."""
    text = (REPO / "docker-compose.yml").read_text()
    for default in ("python:3.11-slim", "node:22-slim", "elasticsearch:7.17.29", "logstash:7.17.29"):
        assert f":-{default}}}" in text
    assert "nginx:" in Path(REPO / SCALE_FILE).read_text()
    assert "standin" not in text
