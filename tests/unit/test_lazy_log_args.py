"""Lazy debug arguments (common/lazy_log_args.py): same lines when logged, no work when not."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import textwrap
import types
from pathlib import Path

import pytest
from autobahn import util as autobahn_util

from common.lazy_log_args import AUTOBAHN, CROSSBAR, LogArg, install, is_lazy, lazy
from devstack.router import REPO, router_venv

LEVELS = {"trace", "debug", "info", "warn", "warning", "error", "critical", "failure"}


def test_a_lazy_argument_renders_what_the_call_returns() -> None:
    calls = []

    def colour(value: object, color: str = "white") -> str:
        calls.append(value)
        return autobahn_util.hlval(value, color=color)

    arg = lazy(colour)(42, color="red")
    assert isinstance(arg, LogArg)
    assert calls == []
    assert f"{arg}" == str(arg) == autobahn_util.hlval(42, color="red")
    assert f"value={arg}" == "value=" + autobahn_util.hlval(42, color="red")
    assert repr(arg) == repr(autobahn_util.hlval(42, color="red"))
    assert calls == [42, 42, 42, 42]  # formatted each time a line shows it


def test_install_rebinds_the_listed_names_once_and_refuses_a_stale_list(monkeypatch) -> None:
    module = types.ModuleType("estrom_fake_module")
    module.hlid = lambda oid: f"<{oid}>"
    module.other = len
    monkeypatch.setitem(__import__("sys").modules, "estrom_fake_module", module)
    original = module.hlid
    assert install({"estrom_fake_module": ("hlid",)}) == 1
    assert is_lazy(module.hlid)
    assert module.hlid.__wrapped__ is original
    assert module.other is len
    assert format(module.hlid("x")) == "<x>"
    assert install({"estrom_fake_module": ("hlid",)}) == 0  # idempotent: not wrapped twice
    assert module.hlid.__wrapped__ is original
    with pytest.raises(AttributeError):
        install({"estrom_fake_module": ("hlflag",)})
    with pytest.raises(ModuleNotFoundError):
        install({"estrom_no_such_module": ("hl",)})


def _router_site_packages() -> Path:
    found = sorted((router_venv() / "lib").glob("python3*/site-packages"))
    assert found, f"no router virtualenv at {router_venv()} (scripts/bootstrap makes it)"
    return found[0]


def _source(module: str, site: Path | None) -> Path:
    if site is None:
        spec = importlib.util.find_spec(module)
        assert spec is not None
        assert spec.origin is not None
        return Path(spec.origin)
    return site / (module.replace(".", "/") + ".py")


def _uses_outside_log_calls(path: Path, names: tuple[str, ...]) -> list[int]:
    """Lines where ``names`` are used other than as a ``<x>.log.<level>(..., k=...)`` argument."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def in_log_call(node: ast.AST) -> bool:
        while node in parents and not isinstance(node, ast.stmt):
            parent = parents[node]
            if isinstance(parent, ast.keyword):
                call = parents[parent]
                func = call.func if isinstance(call, ast.Call) else None
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr in LEVELS
                    and isinstance(func.value, ast.Attribute)
                    and func.value.attr == "log"
                ):
                    return True
            node = parent
        return False

    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names and not isinstance(parents.get(node), ast.alias):
            call = parents.get(node)
            if not (isinstance(call, ast.Call) and call.func is node and in_log_call(call)):
                bad.append(node.lineno)
    return bad


@pytest.mark.parametrize("venv", ["services", "router"])
def test_every_rebound_name_is_only_a_log_argument_in_the_installed_sources(venv: str) -> None:
    # A name used anywhere else (a return value, a concatenation) would get a LogArg
    # instead of a string: an upgrade that does so must fail here, not in the router.
    site = None if venv == "services" else _router_site_packages()
    table = dict(AUTOBAHN) | (dict(CROSSBAR) if venv == "router" else {})
    checked = 0
    for module, names in table.items():
        path = _source(module, site)
        assert _uses_outside_log_calls(path, names) == [], (path, names)
        tree = ast.parse(path.read_text())
        bound = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert set(names) <= bound, f"{module} no longer imports {set(names) - bound}"
        checked += 1
    assert checked == len(table)


def test_the_audit_finds_a_use_outside_a_log_call(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        textwrap.dedent(
            """
            from x import hlid, hlval
            def f(self, v):
                self.log.debug("{a} {b}", a=hlid(v), b=(hlval(v) if v else "-"))
                return "<" + hlid(v) + ">"
            """
        )
    )
    assert _uses_outside_log_calls(source, ("hlid", "hlval")) == [5]


def test_in_the_router_virtualenv_a_line_at_debug_reads_as_before() -> None:
    # crossbar lives only in the router's virtualenv: install there, log at debug, compare.
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import txaio
        txaio.use_twisted()
        from twisted.logger import formatEvent, globalLogPublisher
        from common.lazy_log_args import AUTOBAHN, CROSSBAR, install, is_lazy
        import crossbar.router.broker as broker
        original = broker.hlid
        expected = "granted " + original("docs-for-0123456789abcdef")
        assert install({**AUTOBAHN, **CROSSBAR}) == sum(map(len, {**AUTOBAHN, **CROSSBAR}.values()))
        assert is_lazy(broker.hlid)
        lines = []
        globalLogPublisher.addObserver(lambda event: lines.append(formatEvent(event)))
        log = txaio.make_logger()
        txaio.set_global_log_level("debug")
        log.debug("granted {topic}", topic=broker.hlid("docs-for-0123456789abcdef"))
        assert lines == [expected], (lines, expected)
        print("ok")
        """
    )
    python = router_venv() / "bin" / "python"
    done = subprocess.run([str(python), "-c", script, str(REPO)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
