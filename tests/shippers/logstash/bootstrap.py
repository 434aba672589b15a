"""Logstash's ``elasticsearch`` output, replayed: its start-up, from the first health check to ILM.

``register`` and ``finish_register`` as the plugin runs them: the pool's
health check and license check (``pool.rb``, ``license_checker.rb``), the
cluster uuid, the default template (``template_manager.rb``) and ILM's
rollover alias and policy (``ilm.rb``); what fails there stops the pipeline.
The package's docstring names the plugin's sources for the whole replay.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Any

from tests.shippers.logstash.transport import (
    BadResponseCode,
    Exchange,
    LogstashTransport,
    OutputConfig,
    dump,
)

#: elasticsearch.rb: DEFAULT_POLICY; default-ilm-policy.json.
DEFAULT_POLICY = "logstash-policy"
DEFAULT_ILM_POLICY = {
    "policy": {"phases": {"hot": {"actions": {"rollover": {"max_size": "25gb", "max_age": "30d"}}}}}
}
#: ilm.rb: the ``ilm_pattern`` default.
ILM_PATTERN = "{now/d}-000001"


def default_template_es7(index_patterns: str) -> dict[str, Any]:
    """A subset of templates/ecs-disabled/elasticsearch-7x.json: the ``_template`` body for Elasticsearch 7."""
    return {
        "index_patterns": index_patterns,
        "version": 60001,
        "settings": {"index.refresh_interval": "5s", "number_of_shards": 1},
        "mappings": {
            "dynamic_templates": [
                {
                    "message_field": {
                        "path_match": "message",
                        "match_mapping_type": "string",
                        "mapping": {"type": "text", "norms": False},
                    }
                },
                {
                    "string_fields": {
                        "match": "*",
                        "match_mapping_type": "string",
                        "mapping": {
                            "type": "text",
                            "norms": False,
                            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
                        },
                    }
                },
            ],
            "properties": {"@timestamp": {"type": "date"}, "@version": {"type": "keyword"}},
        },
    }


class ConfigurationError(Exception):
    """LogStash::ConfigurationError raised while registering: the pipeline does not start."""


class NoLiveConnection(Exception):
    """The URL stays dead (no license, no version): Logstash waits, sends nothing, and retries the check."""


class BootstrapFailed(Exception):
    """finish_register failed: 'Failed to bootstrap. Pipeline "main" is going to shut down'."""

    def __init__(self, cause: BadResponseCode | ConfigurationError) -> None:
        super().__init__(f"Failed to bootstrap: {cause}")
        self.cause = cause


class LogstashBootstrap(LogstashTransport):
    """The output's settings as the plugin resolves them, and its start-up against ``hosts``."""

    def __init__(self, config: OutputConfig) -> None:
        super().__init__(config)
        self.es_version: str | None = None
        self.cluster_uuid: str | None = None
        # elasticsearch.rb: setup_ecs_compatibility_related_defaults
        if config.ecs_compatibility == "disabled":
            self.default_index, self.rollover_alias, self.template_name = (
                "logstash-%{+yyyy.MM.dd}",
                "logstash",
                "logstash",
            )
        else:
            self.default_index = "ecs-logstash-%{+yyyy.MM.dd}"
            self.rollover_alias, self.template_name = "ecs-logstash", "ecs-logstash"
        self.index = self.default_index
        # data_stream_support.rb: data_stream unset on Logstash 8 resolves to true unless ECS is
        # disabled or the configuration sets an option data streams do not take (ilm_enabled is one;
        # hosts, user, password and ecs_compatibility are not).
        self.data_stream = config.ecs_compatibility != "disabled" and config.ilm_enabled == "auto"
        if self.data_stream:
            self.index = "logs-generic-default"  # setup_mapper_and_target
        # setup_template_manager_defaults: no template management for data streams.
        self.manage_template = not self.data_stream
        self.ilm_in_use: bool | None = None
        self.template_endpoint: str | None = None

    def register(self) -> None:
        """``register`` then ``finish_register``, as the after-successful-connection thread runs it."""
        self.healthcheck()
        try:
            self.finish_register()
        except (BadResponseCode, ConfigurationError) as exc:
            raise BootstrapFailed(exc) from exc

    def healthcheck(self) -> None:
        try:
            self.perform("HEAD", "/")
            health_error = None
        except BadResponseCode as exc:
            health_error = exc
        try:
            root: Exchange | None = self.perform("GET", "/")
            root_error = None
        except BadResponseCode as exc:
            root, root_error = None, exc
        if root_error is not None and root_error.exchange.status == 401:
            raise ConfigurationError("Could not read Elasticsearch. Please check the credentials")
        if root_error is not None and root_error.exchange.status == 403:
            raise ConfigurationError("Could not read Elasticsearch. Please check the privileges")
        if root_error is None and not self._is_elasticsearch(root):
            raise ConfigurationError("Could not connect to a compatible version of Elasticsearch")
        if health_error is not None or root_error is not None:
            raise NoLiveConnection(str(health_error or root_error))
        assert root is not None
        version = root.json().get("version", {}).get("number")
        if version is None:
            raise NoLiveConnection("Failed to retrieve Elasticsearch version data from connected endpoint")
        self.es_version = version
        # license_checker.rb: appropriate_license? (get_license turns any error into {}).
        try:
            found = self.perform("GET", "/_license").json()
        except (BadResponseCode, ValueError):
            found = {}
        status = (found.get("license") or {}).get("status") if isinstance(found, dict) else None
        if status is None:
            raise NoLiveConnection("Could not connect to a compatible version of Elasticsearch (no license)")

    @staticmethod
    def _is_elasticsearch(root: Exchange | None) -> bool:
        """pool.rb: elasticsearch?"""
        if root is None:
            return False
        try:
            info = root.json()
            version = tuple(int(p) for p in info["version"]["number"].split("-")[0].split(".")[:3])
        except (ValueError, KeyError, TypeError):
            return False
        if version < (6, 0, 0):
            return False
        if version < (7, 0, 0):
            return info.get("tagline") == "You Know, for Search"
        if version < (7, 14, 0):
            flavor = info["version"].get("build_flavor")
            return flavor == "default" and info.get("tagline") == "You Know, for Search"
        return root.response_headers.get("x-elastic-product") == "Elasticsearch"

    @property
    def major(self) -> int:
        assert self.es_version is not None
        return int(self.es_version.split(".")[0])

    def finish_register(self) -> None:
        if self.data_stream and tuple(int(p) for p in self.es_version.split(".")[:2]) < (7, 9):  # type: ignore[union-attr]
            raise ConfigurationError(
                "A data_stream configuration is only supported since Elasticsearch 7.9.0"
            )
        # common.rb: discover_cluster_uuid (its errors are only logged)
        with contextlib.suppress(BadResponseCode, ValueError):
            self.cluster_uuid = self.perform("GET", "/").json().get("cluster_uuid")
        self.ilm_in_use = self._ilm_in_use()
        if self.manage_template:
            self.install_template()
        if self.ilm_in_use:
            self.setup_ilm()

    def _ilm_in_use(self) -> bool:
        """ilm.rb: ilm_in_use? (auto: on for Elasticsearch 7+ when the alias is "set")."""
        enabled = self.config.ilm_enabled
        if enabled is False or enabled == "false":
            return False
        if enabled == "auto" and self.major < 7:
            return False
        return self.index == self.default_index  # ilm_alias_set? with the default rollover alias

    def install_template(self) -> None:
        """template_manager.rb: install_template, then http_client.rb's template_install."""
        if self.config.ecs_compatibility != "disabled":
            raise NotImplementedError("only the ecs-disabled default template is replayed")
        self.template_endpoint = "_index_template" if self.major >= 8 else "_template"
        template = default_template_es7(f"{self.template_name}-*")
        name = self.template_name
        if self.ilm_in_use:
            template["index_patterns"] = f"{self.rollover_alias}-*"
            template["settings"].update(
                {
                    "index.lifecycle.name": DEFAULT_POLICY,
                    "index.lifecycle.rollover_alias": self.rollover_alias,
                }
            )
            name = self.rollover_alias
        if self._exists(f"/{self.template_endpoint}/{name}"):
            return
        self.perform("PUT", f"/{self.template_endpoint}/{name}", dump(template).encode())

    def rollover_alias_exists(self, name: str) -> bool:
        """http_client.rb: rollover_alias_exists? is exists?(name), a HEAD of the bare name."""
        return self._exists(f"/{urllib.parse.quote(name, safe='')}")

    def setup_ilm(self) -> None:
        """ilm.rb: setup_ilm (the index becomes the rollover alias)."""
        self.index = self.rollover_alias
        if not self.rollover_alias_exists(self.rollover_alias):
            target = urllib.parse.quote(f"<{self.rollover_alias}-{ILM_PATTERN}>", safe="")
            payload = {"aliases": {self.rollover_alias: {"is_write_index": True}}}
            try:
                self.perform("PUT", f"/{target}", dump(payload).encode())
            except BadResponseCode as exc:
                if exc.exchange.status != 400:  # rollover_alias_put: 400 is "already exists"
                    raise
        if not self._exists(f"/_ilm/policy/{DEFAULT_POLICY}", use_get=True):
            self.perform("PUT", f"/_ilm/policy/{DEFAULT_POLICY}", dump(DEFAULT_ILM_POLICY).encode())
