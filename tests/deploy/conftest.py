"""The Compose deployment on a real container engine.

One session builds the images and brings the checked-in docker-compose.yml up
on the contract's default ports (8080-8082, 9200), then uses it through those
ports only, as a user would. The tests of ``test_compose.py`` run in file
order against that one deployment (build, up, use, restarts, down/up, scale,
down -v). Skipped, with the reason, only where this machine cannot run
containers at all (not root, no apt-get); any other failure of the
provisioning fails the tier.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from tests.deploy.compose import ALL_FILES, DEFAULT_PORTS, Compose, ports_in_use, provision


@dataclass
class Deployment:
    compose: Compose
    client: docker.DockerClient
    secrets: dict[str, str]

    def containers(self, service: str | None = None) -> list[docker.models.containers.Container]:
        labels = ["com.docker.compose.project=estrom"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client.containers.list(all=True, filters={"label": labels})

    def container(self, service: str) -> docker.models.containers.Container:
        (found,) = self.containers(service)
        return found


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    env = provision()
    if isinstance(env, str):
        pytest.skip(f"no container engine on this machine: {env}")
    client = docker.DockerClient(base_url=env["DOCKER_HOST"], version="auto", timeout=120)
    # Ours from an earlier, interrupted run may still hold the ports: take it down first.
    compose = Compose(env={**env})
    if client.containers.list(all=True, filters={"label": "com.docker.compose.project=estrom"}):
        Compose(env={**env, "ESTROM_BEATER_SECRET": "x", "ESTROM_TAILOR_SECRET": "x"}).run(
            *ALL_FILES, "down", "-v", "--remove-orphans"
        )
    taken = ports_in_use(sorted(DEFAULT_PORTS.values()))
    if taken:
        pytest.fail(
            f"the deployment tier publishes the contract's default ports 8080-8082 and 9200, and "
            f"{', '.join(map(str, taken))} {'is' if len(taken) == 1 else 'are'} taken on 127.0.0.1: "
            "stop what listens there (a scripts/stack?) and run the tier again",
            pytrace=False,
        )
    values = {
        "ESTROM_BEATER_SECRET": secrets.token_hex(24),
        "ESTROM_TAILOR_SECRET": secrets.token_hex(24),
    }
    compose.env.update(values)
    deployed = Deployment(compose, client, values)
    try:
        yield deployed
    finally:
        if deployed.containers():
            compose.run(*ALL_FILES, "down", "-v", check=False)
        client.close()
