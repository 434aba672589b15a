"""The browser role's authorizer (router/estrom_router/authorizer.py): exactly the page's needs.

The same function runs inside the router; tests/security/test_auth_matrix.py
proves the router asks it.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import textwrap

import pytest

from common.contract import ROUTER_AUTHORIZE
from devstack.router import ROUTER_DIR, router_venv
from router.estrom_router.authorizer import browser_may
from router.estrom_router.readers_gate import ReadersGate

SID = "0123456789abcdef"


@pytest.mark.parametrize(
    ("uri", "action", "options"),
    [
        ("com.estrom.register_query", "call", {}),
        ("com.estrom.describe_query", "call", None),
        (f"docs-for-{SID}", "subscribe", {}),
        (f"docs-for-{SID}", "subscribe", None),
        (f"docs-for-{SID}", "subscribe", {"match": "exact"}),
    ],
)
def test_the_page_may_register_describe_and_subscribe_to_one_sid(uri, action, options) -> None:
    assert browser_may(uri, action, options)


@pytest.mark.parametrize(
    ("uri", "action", "options"),
    [
        # Prefix and wildcard subscriptions: every query's hits.
        ("docs-for-", "subscribe", {"match": "prefix"}),
        ("docs-for-a", "subscribe", {"match": "prefix"}),
        (f"docs-for-{SID}", "subscribe", {"match": "prefix"}),
        (f"docs-for-{SID}", "subscribe", {"match": "wildcard"}),
        ("", "subscribe", {"match": "wildcard"}),
        (f"docs-for-{SID}", "subscribe", {"match": "nonsense"}),
        # Not a sid: too short, too long, upper case, not hex, anything around it.
        ("docs-for-", "subscribe", {}),
        (f"docs-for-{SID[:-1]}", "subscribe", {}),
        (f"docs-for-{SID}0", "subscribe", {}),
        (f"docs-for-{SID.upper()}", "subscribe", {}),
        ("docs-for-0123456789abcdeg", "subscribe", {}),
        (f"docs-for-{SID}\n", "subscribe", {}),
        (f"x.docs-for-{SID}", "subscribe", {}),
        # Other actions on the allowed URIs.
        (f"docs-for-{SID}", "publish", {}),
        (f"docs-for-{SID}", "call", {}),
        ("com.estrom.register_query", "register", {}),
        ("com.estrom.register_query", "subscribe", {}),
        ("com.estrom.register_query", "publish", {}),
        # Other procedures and topics.
        ("com.estrom.sweep", "call", {}),
        ("com.estrom.register_query.x", "call", {}),
        ("estrom.router.authorize_browser", "call", {}),
        ("wamp.session.list", "call", {}),
        ("wamp.subscription.on_create", "subscribe", {}),
    ],
)
def test_everything_else_is_refused(uri, action, options) -> None:
    assert not browser_may(uri, action, options)


def test_the_router_config_wires_the_reader_roles_to_the_gate() -> None:
    """Both reader roles name the procedure the embedded gate registers, under a role allowed to."""
    (worker,) = json.loads((ROUTER_DIR / "config.json").read_text())["workers"]
    roles = {role["name"]: role for realm in worker["realms"] for role in realm["roles"]}
    assert roles["browser"] == {"name": "browser", "authorizer": ROUTER_AUTHORIZE}
    assert roles["reader"] == {"name": "reader", "authorizer": ROUTER_AUTHORIZE}
    (component,) = worker["components"]
    module, _, name = component["classname"].rpartition(".")
    assert getattr(importlib.import_module(f"router.{module}"), name) is ReadersGate
    grants = {g["uri"]: g for g in roles[component["role"]]["permissions"]}
    assert [a for a, allowed in grants["estrom.router."]["allow"].items() if allowed] == ["register"]
    assert ROUTER_AUTHORIZE.startswith("estrom.router.")
    # Relative to the config's directory, as crossbar resolves it (devstack makes it absolute):
    # the gate's own package, and the repository root for common/ (contract.py, access/, ...).
    assert worker["options"]["pythonpath"] == [".", ".."]
    assert (ROUTER_DIR / module.replace(".", "/")).with_suffix(".py").is_file()
    assert (ROUTER_DIR / ".." / "common" / "access" / "readers.py").is_file()


def test_the_gate_imports_in_the_router_virtualenv_as_crossbar_imports_it() -> None:
    # crossbar's virtualenv has none of the services' packages: what the gate takes from
    # common/ (the contract's names among it) must import there, by the config's pythonpath.
    (worker,) = json.loads((ROUTER_DIR / "config.json").read_text())["workers"]
    (component,) = worker["components"]
    script = textwrap.dedent(
        f"""
        import importlib, sys
        sys.path[:0] = {worker["options"]["pythonpath"]!r}
        module, _, name = {component["classname"]!r}.rpartition(".")
        getattr(importlib.import_module(module), name)
        from estrom_router.authorizer import browser_may
        assert browser_may("docs-for-{SID}", "subscribe", {{}})
        assert not browser_may("docs-for-{SID.upper()}", "subscribe", {{}})
        print("ok")
        """
    )
    python = router_venv() / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", script], cwd=ROUTER_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
