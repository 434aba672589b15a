"""Documents the shared percolator index cannot map: folded into its default field, or refused by a shard (pure).

A document's fields the index does not map would otherwise grow its mapping
at percolation time; folded, they still match free-text queries.
"""

from __future__ import annotations

from beater.matching.folding import fold_unmapped
from beater.matching.refusals import refused_by_a_shard as _refused_by_a_shard
from beater.store.schema import TEXT_WITH_KEYWORD

P = "estrom-queries-"


def test_fields_the_index_does_not_map_are_folded_into_the_default_field() -> None:
    props = {
        "kind": TEXT_WITH_KEYWORD,
        "host": {"properties": {"name": {"type": "keyword"}}},
        "tags": {"properties": {"k": {"type": "keyword"}}},
    }
    doc = {
        "kind": "a",
        "new": "upstream timeout",
        "host": {"name": "web-1", "os": {"family": "linux", "v": 6}},
        "tags": [{"k": "x", "extra": True}, "loose"],
        "host.name": "dotted-is-mapped",
        "missing.path": None,
    }
    folded = fold_unmapped(doc, props)
    assert folded == {
        "kind": "a",
        "host": {"name": "web-1"},
        "tags": [{"k": "x"}, "loose"],
        "host.name": "dotted-is-mapped",
        "estrom_all": ["upstream timeout", "linux", "6", "true"],
    }
    assert doc["host"]["os"] == {"family": "linux", "v": 6}  # the original is left whole
    mapped = {"kind": "a", "host": {"name": "web-1"}}
    assert fold_unmapped(mapped, props) is mapped


def test_a_shard_that_could_not_parse_the_document_refuses_it() -> None:
    partial = {
        "_shards": {
            "failed": 1,
            "failures": [
                {
                    "index": P + "_shared-0",
                    "reason": {
                        "type": "query_shard_exception",
                        "reason": "failed to create query: failed to parse",
                        "caused_by": {
                            "type": "mapper_parsing_exception",
                            "caused_by": {
                                "type": "illegal_argument_exception",
                                "reason": "Limit of total fields",
                            },
                        },
                    },
                }
            ],
        }
    }
    assert _refused_by_a_shard(partial) == "Limit of total fields"
    other = {"_shards": {"failures": [{"reason": {"type": "node_disconnected_exception"}}]}}
    assert _refused_by_a_shard(other) is None
    assert _refused_by_a_shard({"_shards": {"failed": 0}}) is None
