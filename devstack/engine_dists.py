"""The engine distributions estrom runs, and how Maven Central names their parts.

``ESTROM_ENGINE_DIST=<family>-<version>`` picks the distribution (README
"Supported engines"): ``elasticsearch-7.17.29`` (the default),
``opensearch-2.19.6`` and ``opensearch-3.8.0`` (the newest 3.x whose
``percolator-client`` of the same version resolves: 3.9.0 has none). Neither
OpenSearch integ-test zip carries the security plugin, so nodes speak plain
HTTP without a setting to turn it off.

Modules (``Dist.modules``), installed under ``modules/`` as the engines' own
distributions do, each with its jars and a ``plugin-descriptor.properties``;
one the integ-test zip already carries (OpenSearch 3 has them all) is kept:

- ``percolator``: what estrom percolates with;
- ``mapper-extras``: ``scaled_float``, ``rank_feature``, ``search_as_you_type``
  ..., which shippers' index templates use (Filebeat's: ``scaled_float``);
- ``ingest-common``: the ingest processors (``set``, ``remove``, ``drop``,
  ``rename``, ``grok``, ``dissect`` ...) shippers' pipelines name, and
  ``lang-painless``, which it extends and which runs processors' ``if``
  conditions and ``script`` processors. OpenSearch only: Maven Central has
  ``org.opensearch.plugin:ingest-common`` and ``lang-painless`` with their
  dependencies (grok, dissect, joni, jcodings; the painless SPI, antlr, asm).
  Elasticsearch 7.17's ``ingest-common`` is not on Maven Central (nor
  ``lang-painless`` or ``elasticsearch-grok``), so Elasticsearch nodes run
  ingest pipelines without processors: a pipeline naming one is refused
  (``400 parse_exception: No processor type exists with name [set]``).
  ``Dist.has_ingest_processors`` tells tests which case they run on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: The engine the tests run against by default. See README "Supported engines".
DEFAULT_DIST = "elasticsearch-7.17.29"
#: Every distribution the test matrix runs (scripts/test).
TESTED_DISTS = ("elasticsearch-7.17.29", "opensearch-2.19.6", "opensearch-3.8.0")
#: Kept for callers that name the Elasticsearch version.
ENGINE_VERSION = "7.17.29"


@dataclass(frozen=True)
class Module:
    """One module installed into ``modules/<name>``: its Maven artifacts (jar first) and descriptor."""

    name: str
    description: str
    classname: str
    artifacts: tuple[str, ...]
    #: Plugins this one extends through SPI (descriptor's ``extended.plugins``).
    extended_plugins: str = ""
    #: Its ``plugin-security.policy`` (the security manager's grants), if it needs one.
    policy: str = ""


#: lang-painless's ``plugin-security.policy``, as OpenSearch ships it: it compiles scripts to classes.
PAINLESS_POLICY = """grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";

  // needed to find the classloader to load allowlisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
"""


@dataclass(frozen=True)
class Dist:
    """One engine distribution: family, version and how Maven Central names its parts."""

    family: str
    version: str

    @property
    def name(self) -> str:
        return f"{self.family}-{self.version}"

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    @property
    def group(self) -> str:
        return "org.elasticsearch" if self.family == "elasticsearch" else "org.opensearch"

    @property
    def dist_artifact(self) -> str:
        return f"{self.group}.distribution.integ-test-zip:{self.family}:{self.version}:zip"

    @property
    def percolator_artifact(self) -> str:
        return f"{self.group}.plugin:percolator-client:{self.version}"

    @property
    def percolator_class(self) -> str:
        if self.family == "elasticsearch":
            return "org.elasticsearch.percolator.PercolatorPlugin"
        # OpenSearch 3 renamed the module's plugin class.
        if self.major >= 3:
            return "org.opensearch.percolator.PercolatorModulePlugin"
        return "org.opensearch.percolator.PercolatorPlugin"

    @property
    def modules(self) -> tuple[Module, ...]:
        """What is installed under ``modules/`` beside the distribution's own (module docstring)."""
        g, v = self.group, self.version
        mods = [
            Module(
                "percolator",
                "Percolator module adds capability to index queries and query these "
                "queries by specifying documents",
                self.percolator_class,
                (self.percolator_artifact,),
            ),
            Module(
                "mapper-extras",
                "Adds advanced field mappers",
                f"{g}.index.mapper.MapperExtrasModulePlugin"
                if self.family == "opensearch" and self.major >= 3
                else f"{g}.index.mapper.MapperExtrasPlugin",
                (f"{g}.plugin:mapper-extras-client:{v}",),
            ),
        ]
        if self.family == "opensearch":
            # Compile dependencies of lang-painless's, ingest-common's and opensearch-grok's POMs (2.19.6).
            mods.append(
                Module(
                    "lang-painless",
                    "An easy, safe and fast scripting language for OpenSearch",
                    "org.opensearch.painless.PainlessModulePlugin"
                    if self.major >= 3
                    else "org.opensearch.painless.PainlessPlugin",
                    (
                        f"org.opensearch.plugin:lang-painless:{v}",
                        f"org.opensearch.plugin:opensearch-scripting-painless-spi:{v}",
                        "org.antlr:antlr4-runtime:4.13.1",
                        "org.ow2.asm:asm:9.7",
                        "org.ow2.asm:asm-util:9.7",
                        "org.ow2.asm:asm-tree:9.7",
                        "org.ow2.asm:asm-commons:9.7",
                        "org.ow2.asm:asm-analysis:9.7",
                    ),
                    policy=PAINLESS_POLICY,
                )
            )
            mods.append(
                Module(
                    "ingest-common",
                    "Module for ingest processors that do not require additional security "
                    "permissions or have large dependencies and resources",
                    "org.opensearch.ingest.common.IngestCommonModulePlugin"
                    if self.major >= 3
                    else "org.opensearch.ingest.common.IngestCommonPlugin",
                    (
                        f"org.opensearch.plugin:ingest-common:{v}",
                        f"org.opensearch:opensearch-grok:{v}",
                        f"org.opensearch:opensearch-dissect:{v}",
                        "org.jruby.joni:joni:2.2.1",
                        "org.jruby.jcodings:jcodings:1.0.61",
                    ),
                    extended_plugins="lang-painless",
                )
            )
        return tuple(mods)

    @property
    def has_ingest_processors(self) -> bool:
        """Whether its nodes run ingest pipelines' processors (``set``, ``remove``, ``drop`` ...):
        OpenSearch yes (``ingest-common``), Elasticsearch 7 no (not on Maven Central)."""
        return any(m.name == "ingest-common" for m in self.modules)

    @property
    def java_version(self) -> str:
        """The ``java.version`` its modules' descriptors declare."""
        if self.family == "elasticsearch":
            return "1.8"
        return "21" if self.major >= 3 else "11"

    @property
    def needs_java21(self) -> bool:
        return self.family == "opensearch" and self.major >= 3

    @property
    def binary(self) -> str:
        return self.family  # bin/elasticsearch, bin/opensearch

    @property
    def env_prefix(self) -> str:
        """``ES_`` / ``OPENSEARCH_``: the launcher's variables (PATH_CONF, JAVA_HOME, ...)."""
        return "ES_" if self.family == "elasticsearch" else "OPENSEARCH_"

    @property
    def config_file(self) -> str:
        return f"{self.family}.yml"


def parse_dist(text: str) -> Dist:
    """``"opensearch-2.19.6"`` to a Dist; a clear ValueError for anything else."""
    family, sep, version = text.strip().partition("-")
    parts = version.split(".")
    if not sep or family not in ("elasticsearch", "opensearch") or len(parts) != 3:
        raise ValueError(
            f"ESTROM_ENGINE_DIST must be <family>-<x.y.z> with family elasticsearch or opensearch "
            f"(e.g. {', '.join(TESTED_DISTS)}), not {text!r}"
        )
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"ESTROM_ENGINE_DIST version must be x.y.z, not {version!r}")
    dist = Dist(family, version)
    if family == "elasticsearch" and dist.major != 7:
        # 8.x and later publish no percolator module (README "Supported engines").
        raise ValueError(
            f"ESTROM_ENGINE_DIST={text}: only Elasticsearch 7.x ships a percolator module on Maven Central"
        )
    if family == "opensearch" and dist.major not in (2, 3):
        raise ValueError(f"ESTROM_ENGINE_DIST={text}: estrom runs OpenSearch 2.x and 3.x")
    return dist


def selected_dist() -> Dist:
    """The distribution ``ESTROM_ENGINE_DIST`` names (default: Elasticsearch 7.17.29)."""
    return parse_dist(os.environ.get("ESTROM_ENGINE_DIST") or DEFAULT_DIST)
