"""Who may do what on the router: roles, secrets, anonymous access, origins.

The ingest endpoint's bearer token (ESTROM_INGEST_TOKEN → 401) is covered by
tests/integration/test_beater_errors_limits.py::test_ingest_token.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from devstack.router import render_config
from devstack.stack import Stack
from devstack.wamp_client import JoinRefused, WampClient, on_reactor
from tests.real_stack import SECRETS, RouterHandle, StartService, admin_client
from tests.waiting import wait_until

NOT_AUTHORIZED = "wamp.error.not_authorized"
DENIED = (400, 403)  # autobahn fails a refused handshake with 400 "origin not allowed"


def refused(action: Any) -> str:
    with pytest.raises(ApplicationError) as err:
        action()
    return err.value.error


def register(client: WampClient, procedure: str, invoke: str | None = None) -> Any:
    options = RegisterOptions(invoke=invoke) if invoke else None
    return on_reactor(lambda: client.session.register(lambda *a: None, procedure, options=options))


def client_as(router: RouterHandle, role: str, secret: str | None = None) -> WampClient:
    return WampClient(router.url, authid=role, secret=secret or SECRETS[f"ESTROM_{role.upper()}_SECRET"])


def test_anonymous_may_only_register_describe_and_subscribe(router: RouterHandle, beater, index: str) -> None:
    anon = WampClient(router.url)
    try:
        assert anon.details.authrole == "browser"
        sid = anon.call("com.estrom.register_query", index, "level:error")
        assert anon.call("com.estrom.describe_query", sid)["index"] == index
        anon.subscribe(f"docs-for-{sid}")

        assert (
            refused(lambda: anon.publish(f"docs-for-{sid}", {"_index": index, "_source": {}}))
            == NOT_AUTHORIZED
        )
        # Joining the beaters' shared (round-robin) registration is what an intruder would try.
        assert refused(lambda: register(anon, "com.estrom.register_query", "roundrobin")) == NOT_AUTHORIZED
        # A single registration is refused too; crossbar names the policy clash before the
        # missing permission when the procedure exists, but registers nothing either way.
        assert refused(lambda: register(anon, "com.estrom.register_query")) in (
            NOT_AUTHORIZED,
            "wamp.error.procedure_exists_with_different_invocation_policy",
        )
        assert anon.call("com.estrom.describe_query", sid)["index"] == index  # still the beater
        assert refused(lambda: register(anon, "com.estrom.something_else")) == NOT_AUTHORIZED
        assert refused(lambda: anon.call("wamp.subscription.lookup", f"docs-for-{sid}")) == NOT_AUTHORIZED
        assert refused(lambda: anon.call("wamp.session.list")) == NOT_AUTHORIZED
        assert refused(lambda: anon.subscribe("wamp.subscription.on_create")) == NOT_AUTHORIZED
        assert refused(lambda: anon.subscribe("com.estrom.anything")) == NOT_AUTHORIZED
    finally:
        anon.close()


def test_beater_role_registers_publishes_and_reads_subscription_meta(router: RouterHandle) -> None:
    client = client_as(router, "beater")
    try:
        assert client.details.authrole == "beater"
        client.publish("docs-for-0000000000000000", {"_index": "x", "_source": {}})
        client.subscribe("wamp.subscription.on_create")
        client.subscribe("wamp.subscription.on_delete")
        assert client.call("wamp.subscription.lookup", "docs-for-0000000000000000") is None
        assert refused(lambda: client.subscribe("docs-for-0000000000000000")) == NOT_AUTHORIZED
        assert refused(lambda: client.call("wamp.session.list")) == NOT_AUTHORIZED
        assert refused(lambda: client.publish("elsewhere", 1)) == NOT_AUTHORIZED
    finally:
        client.close()


def test_tailor_role_calls_and_subscribes_only(router: RouterHandle, beater, index: str) -> None:
    client = client_as(router, "tailor")
    try:
        sid = client.call("com.estrom.register_query", index, "kind:x")
        client.subscribe(f"docs-for-{sid}")
        assert refused(lambda: client.publish(f"docs-for-{sid}", {})) == NOT_AUTHORIZED
        assert refused(lambda: register(client, "com.estrom.register_query", "roundrobin")) == NOT_AUTHORIZED
        assert refused(lambda: client.call("wamp.subscription.lookup", f"docs-for-{sid}")) == NOT_AUTHORIZED
    finally:
        client.close()


def test_admin_reaches_the_meta_api(router: RouterHandle) -> None:
    client = admin_client(router.url)
    try:
        assert client.details.authrole == "admin"
        assert isinstance(client.call("wamp.session.count"), int)
    finally:
        client.close()


@pytest.mark.parametrize("authid", ["beater", "tailor", "admin", "nobody"])
def test_a_wrong_secret_cannot_join(router: RouterHandle, authid: str) -> None:
    with pytest.raises(JoinRefused) as err:
        WampClient(router.url, authid=authid, secret="not-the-secret")
    assert err.value.reason == NOT_AUTHORIZED


def test_a_beater_with_a_wrong_secret_stays_out(start_beater: StartService, stack: Stack, index: str) -> None:
    own = stack.start_router(f"router-{index}")
    try:
        env = stack.service_env(
            "beater",
            engine_url="http://127.0.0.1:9",
            router_url=own.service_url,
            ESTROM_BEATER_SECRET="not-the-secret",
        )
        handle = stack.start_service("beater", env=env, wait=False)
        try:
            # As long as a service is given to start (devstack's wait_ready), then to be refused.
            wait_until(
                lambda: NOT_AUTHORIZED in handle.process.log_path.read_text(errors="replace"),
                60,
                "the beater's refusal logged",
            )
            assert handle.process.ready_info is None  # never joined, never ready
            anon = WampClient(own.url)
            with pytest.raises(ApplicationError) as err:
                anon.call("com.estrom.register_query", index, "x:y")
            assert err.value.error == "wamp.error.no_such_procedure"
            anon.close()
        finally:
            handle.stop()
    finally:
        own.stop()


def ws_handshake(port: int, origin: str | None) -> int:
    """The HTTP status of a WebSocket opening handshake on /ws with this Origin."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: wamp.2.json",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def test_only_the_routers_own_page_may_open_the_websocket(router: RouterHandle) -> None:
    assert ws_handshake(router.port, f"http://127.0.0.1:{router.port}") == 101
    assert ws_handshake(router.port, f"http://localhost:{router.port}") == 101
    assert ws_handshake(router.port, None) == 101  # non-browser clients send no Origin
    assert ws_handshake(router.port, "http://evil.example") in DENIED
    assert ws_handshake(router.port, "http://127.0.0.1:9999") in DENIED


def test_anonymous_off_and_origins_configured(stack: Stack, index: str) -> None:
    own = stack.start_router(
        f"router-{index}",
        ESTROM_ROUTER_ANONYMOUS="0",
        ESTROM_ROUTER_ALLOWED_ORIGINS="https://estrom.example.org, https://*.example.net",
    )
    try:
        with pytest.raises(JoinRefused):
            WampClient(own.url)
        admin = admin_client(own.url)
        assert admin.details.authrole == "admin"
        admin.close()
        assert ws_handshake(own.port, "https://estrom.example.org") == 101
        assert ws_handshake(own.port, "https://tail.example.net") == 101
        assert ws_handshake(own.port, f"http://127.0.0.1:{own.port}") in DENIED
    finally:
        own.stop()


def test_rendered_config_names_variables_not_secrets(tmp_path: Path) -> None:
    env = {**SECRETS, "ESTROM_ROUTER_ANONYMOUS": "1"}
    text = render_config(tmp_path, host="127.0.0.1", port=8080, env=env).read_text()
    for value in SECRETS.values():
        assert value not in text
    assert "${ESTROM_BEATER_SECRET}" in text
    # Without an admin secret there is no admin principal at all.
    config = json.loads(render_config(tmp_path, host="127.0.0.1", port=8080, env={}).read_text())
    ws = config["workers"][0]["transports"][0]["paths"]["ws"]
    assert "wampcra" not in ws["auth"]
    assert ws["auth"]["anonymous"]["role"] == "browser"
    with pytest.raises(ValueError, match="no one in"):
        render_config(tmp_path, host="127.0.0.1", port=8080, env={"ESTROM_ROUTER_ANONYMOUS": "0"})
