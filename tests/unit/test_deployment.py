"""docker-compose.yml, the Dockerfile and the Logstash pipeline, checked against the code.

No Docker engine runs here; these tests read the files and hold them to what
the code reads and runs: commands that exist, ports and variable names that
``Settings.from_env`` and the router config use, the paths the image copies.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.config import Settings
from devstack.router import REPO, ROUTER_DIR, SECRET_VARS, router_process
from devstack.stack import service_process

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PIPELINE = (REPO / "deploy/logstash/pipeline/estrom.conf").read_text()
ROUTER_CONFIG = json.loads((ROUTER_DIR / "config.json").read_text())
#: Registry host names never appear: only short image names (elasticsearch:7.17.29).
REGISTRY_HOST = re.compile(r"\b[\w-]+\.(io|com|org|net|dev)/")


class _Recording(dict):
    """An environment that remembers every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def settings_variables() -> set[str]:
    env = _Recording()
    Settings.from_env(env)
    return env.asked


def _port(endpoint: str) -> int:
    """``tcp:8081:interface=...`` -> 8081."""
    return int(endpoint.split(":")[1])


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def _router_port() -> int:
    return ROUTER_CONFIG["workers"][0]["transports"][0]["endpoint"]["port"]


def _dockerfile_command(instruction: str) -> list[str]:
    line = next(line for line in DOCKERFILE.splitlines() if line.startswith(instruction + " "))
    return json.loads(line[len(instruction) + 1 :])


def _stage(target: str) -> str:
    """The Dockerfile's lines of stage ``target`` (up to the next FROM)."""
    return DOCKERFILE.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]


def test_service_commands_are_the_local_stacks_entry_points(tmp_path: Path) -> None:
    for name in ("beater", "tailor"):
        local = service_process(name, name, {}, tmp_path, 0).argv
        assert local[0] == sys.executable
        assert SERVICES[name]["command"] == ["python", *local[1:]]
        assert importlib.util.find_spec(f"{name}.__main__") is not None
        assert SERVICES[name]["build"]["target"] == "services"
    local_router = router_process(
        tmp_path / "router", host="127.0.0.1", port=1, log_path=tmp_path / "r.log"
    ).argv
    assert Path(local_router[0]).name == "crossbar"
    # The router image's command: crossbar start, its cbdir a tmpfs, the rendered config.
    command = json.loads(_stage("router").split("\nCMD ", 1)[1].splitlines()[0])
    assert command[:2] == ["crossbar", *local_router[1:2]]
    assert command[command.index("--cbdir") + 1] == "/tmp/crossbar"
    assert command[command.index("--config") + 1] == "/app/router/config.json"
    assert SERVICES["router"]["build"]["target"] == "router"
    assert "/tmp" in " ".join(SERVICES["router"]["tmpfs"])
    # The services image's default command is the beater's.
    services_cmd = json.loads(_stage("services").split("\nCMD ", 1)[1].splitlines()[0])
    assert services_cmd == SERVICES["beater"]["command"]


def test_the_images_have_what_the_commands_need() -> None:
    # Base images are build arguments whose defaults are what users pull.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert re.search(r"^ARG NODE_IMAGE=node:22-slim$", DOCKERFILE, re.M)
    assert "pip install -r /src/requirements.txt" in _stage("build-router")
    assert any(
        line.startswith("crossbar==") for line in (ROUTER_DIR / "requirements.txt").read_text().splitlines()
    )
    router, services = _stage("router"), _stage("services")
    assert "/opt/venv-router" in router
    assert "/opt/venv-router" not in services  # no crossbar in beater/tailor images
    assert "COPY --from=build-services /opt/venv /opt/venv" in services
    # Every package the project installs goes into the services' virtualenv.
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = json.loads(re.search(r"^packages = (\[.*\])$", pyproject, re.M).group(1))
    for package in packages:
        if "." not in package:
            assert f"COPY {package} /src/{package}" in _stage("build-services")
    # The image installs the project (not editable): every subpackage must be listed,
    # or the services image lacks it (common.query was missing once).
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in {p.split(".")[0] for p in packages}
        for init in (REPO / top).rglob("__init__.py")
    }
    assert on_disk <= set(packages), sorted(on_disk - set(packages))
    # The page's static paths and the authorizer are copied where the rendered config points.
    for transport in ROUTER_CONFIG["workers"][0]["transports"]:
        for path in transport["paths"].values():
            if path["type"] == "static":
                top = path["directory"].split("/")[0]
                assert f"/app/router/{top}" in router, top
    assert "COPY router/estrom_router /app/router/estrom_router" in router
    # Final stages: non-root, no npm, no build tools.
    for stage in (router, services):
        assert "USER 10001" in stage
        assert "npm" not in stage
        assert "pip install" not in stage


def _project_imports(path: Path) -> set[str]:
    """The ``common...`` modules ``path`` imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {name for name in names if name.split(".")[0] == "common"}
    return found


def test_the_router_image_copies_every_project_module_its_code_imports() -> None:
    # The router image holds only the few common modules the router worker imports
    # (router/estrom_router: standard library and crossbar's tree): follow its imports.
    copied = set()
    for line in _stage("router").splitlines():
        if line.startswith("COPY common"):
            copied |= set(line.split()[1:-1])
    todo = list((ROUTER_DIR / "estrom_router").glob("*.py"))
    seen: set[str] = set()
    while todo:
        for module in _project_imports(todo.pop()) - seen:
            seen.add(module)
            path = REPO / (module.replace(".", "/") + ".py")
            if not path.exists():  # a package
                path = REPO / module.replace(".", "/") / "__init__.py"
            assert str(path.relative_to(REPO)) in copied, f"the router image lacks {module}"
            todo.append(path)
    assert "common.lazy_log_args" in seen


def test_ports_match_the_code() -> None:
    defaults = Settings()
    assert _container_ports(SERVICES["router"]) == {_router_port()}
    assert _container_ports(SERVICES["beater"]) == {_port(defaults.beater_listen)}
    assert _container_ports(SERVICES["tailor"]) == {_port(defaults.tailor_listen)}
    assert _container_ports(SERVICES["elasticsearch"]) == {int(defaults.engine_url.rsplit(":", 1)[1])}
    for name, setting in (("beater", "ESTROM_BEATER_LISTEN"), ("tailor", "ESTROM_TAILOR_LISTEN")):
        listen = _environment(SERVICES[name])[setting]
        assert _port(listen) in _container_ports(SERVICES[name])
        assert "interface=0.0.0.0" in listen
        assert f"{setting}=tcp:{_port(listen)}:interface=0.0.0.0" in _stage("services")
    service_env = _environment(SERVICES["beater"])
    assert service_env["ESTROM_ROUTER_URL"] == f"ws://router:{_router_port()}/ws"
    assert service_env["ESTROM_ENGINE_URL"].endswith("http://elasticsearch:9200}")


def test_environment_names_are_the_ones_the_code_reads() -> None:
    read = settings_variables()
    assert "ESTROM_ENGINE_URL" in read  # the recording works
    # Read access (common/access/, not Settings): the router and the tailor only.
    readers = {"ESTROM_READERS", "ESTROM_ANONYMOUS_READS"}
    assert readers <= set(_environment(SERVICES["tailor"]))
    assert readers <= set(_environment(SERVICES["router"]))
    assert not readers & set(_environment(SERVICES["beater"]))
    # Write access (common/access/writers.py, not Settings): the beater only.
    writers = {"ESTROM_ACCESS", "ESTROM_ANONYMOUS_WRITES"}
    assert writers <= set(_environment(SERVICES["beater"]))
    for name in ("beater", "tailor"):
        for variable in set(_environment(SERVICES[name])) - readers - writers:
            assert variable in read, f"{name}: {variable} is not read by Settings.from_env"
    # The router gets exactly the secrets its config names, and the read-access settings.
    named = set(re.findall(r"\$\{(ESTROM_\w+)\}", (ROUTER_DIR / "config.json").read_text()))
    assert named <= set(SECRET_VARS)
    assert set(_environment(SERVICES["router"])) == named | readers
    assert "ESTROM_BEATER_SECRET" in _environment(SERVICES["beater"])
    assert "ESTROM_TAILOR_SECRET" in _environment(SERVICES["tailor"])


def test_health_checks_and_start_order() -> None:
    for name, port in (("beater", 8081), ("tailor", 8082)):
        check = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in check
    assert f":{_router_port()}/" in " ".join(SERVICES["router"]["healthcheck"]["test"])
    assert "_cluster/health" in " ".join(SERVICES["elasticsearch"]["healthcheck"]["test"])
    for name, needs in (("beater", {"elasticsearch", "router"}), ("tailor", {"elasticsearch", "router"})):
        depends = SERVICES[name]["depends_on"]
        assert needs <= set(depends)
        assert all(d["condition"] == "service_healthy" for d in depends.values())


def test_images_and_profiles() -> None:
    assert SERVICES["elasticsearch"]["image"] == "${ESTROM_ELASTICSEARCH_IMAGE:-elasticsearch:7.17.29}"
    assert SERVICES["elasticsearch"]["environment"]["xpack.security.enabled"] == "false"
    assert SERVICES["elasticsearch"]["environment"]["discovery.type"] == "single-node"
    assert SERVICES["logstash"]["image"] == "${ESTROM_LOGSTASH_IMAGE:-logstash:7.17.29}"
    assert SERVICES["logstash"]["profiles"] == ["demo"]
    assert all("profiles" not in s for n, s in SERVICES.items() if n != "logstash")
    mounted = SERVICES["logstash"]["volumes"][0].split(":")[0]
    assert (REPO / mounted / "estrom.conf").exists()
    for text in ((REPO / "docker-compose.yml").read_text(), DOCKERFILE):
        assert not REGISTRY_HOST.search(text)


def _plugin_settings(section: str, plugin: str) -> dict[str, str]:
    """The ``key => value`` lines of the first ``plugin { ... }`` inside ``section { ... }``."""
    body = PIPELINE.split(f"\n{section} {{", 1)[1]
    block = body.split(f"\n  {plugin} {{", 1)[1].split("\n  }", 1)[0]
    settings = {}
    for line in block.splitlines():
        key, sep, value = line.strip().partition(" => ")
        if sep and not key.startswith("#"):
            settings[key] = value
    return settings


def test_logstash_http_output_follows_the_ingest_contract() -> None:
    http = _plugin_settings("output", "http")
    url = shlex.split(http["url"])[0]
    assert re.fullmatch(r"http://beater:8081/api/v0\.1/ingest/[a-z0-9][a-z0-9._-]*", url)
    assert shlex.split(http["http_method"]) == ["post"]
    assert shlex.split(http["format"]) == ["json_batch"]
    assert shlex.split(http["content_type"]) == ["application/json"]
    es = _plugin_settings("output", "elasticsearch")
    assert "http://elasticsearch:9200" in es["hosts"]
    # The same index in both outputs: backfill (n=) reads what the tail follows.
    assert shlex.split(es["index"])[0] == url.rsplit("/", 1)[1]
    assert "generator {" in PIPELINE


@pytest.mark.parametrize("variable", ["ESTROM_TAILOR_URL", "ESTROM_BEATER_URL"])
def test_cli_variables_are_documented(variable: str) -> None:
    assert f"`{variable}`" in (REPO / "README.md").read_text()


def test_an_unset_ingest_token_stays_unset_in_the_container() -> None:
    # "${ESTROM_INGEST_TOKEN:-}" set it to "" when unset, which the beater refuses
    # (a set-but-empty token would turn authentication off): found by tests/deploy.
    assert SERVICES["beater"]["environment"]["ESTROM_INGEST_TOKEN"] is None
