"""The shared percolator index's schema: its fields, settings and mapping, and a stored query document.

Every read target's queries live in one shared percolator index (more only
when targets disagree on a field's type, ``beater/store/mappings.py``); each
stored query carries its canonical target (``TARGET_FIELD``), and a batch is
percolated with a ``terms`` filter on the targets covering its index. The
percolator index parses both the stored queries and the percolated
documents, so its mapping decides what matches. It is built so that:

* every string field is text with a ``keyword`` sub-field (as dynamic mapping
  would do in the document index), numbers and dates keep their types;
* every value is also copied into ``estrom_all``, the default field, so a
  query string without a field (``timeout``) searches the whole document, as
  it does against the document index;
* fields a query names are mapped *before* the query is stored
  (``common/query/fields.py``, ``beater/store/mappings.py``): from the
  document index's mapping when it has them, otherwise as text + keyword.
"""

from __future__ import annotations

from typing import Any

from common.query.prepared import PreparedQuery

QUERY_FIELD = "estrom_query"
ALL_FIELD = "estrom_all"
SID_FIELD = "estrom_sid"
META_FIELD = "estrom_meta"
#: The query's canonical read target: percolation filters on it.
TARGET_FIELD = "estrom_target"
#: When the query was (last) registered: a beater that has not read the
#: targets since then still percolates it (``beater/matching/percolate.py``).
REGISTERED_FIELD = "estrom_registered"
#: A signpost (``signpost_document``) names the target whose query was placed apart, and where.
SIGNPOST_FIELD = "estrom_signpost"
SIGNPOST_GROUP_FIELD = "estrom_signpost_group"
#: The fields a query names that no index of its target mapped when it was registered: what the
#: field budgets count (``beater/store/budget.py``).
NEW_FIELDS_FIELD = "estrom_new_fields"
#: The reader that registered the query, where the beater knows it (the per-reader field budget).
PRINCIPAL_FIELD = "estrom_principal"
#: Suffix (after the prefix) of the shared percolator indices: ``<prefix>_shared-<n>``.
#: No document index name starts with ``_``, so none is ever taken for one.
SHARED_SUFFIX = "_shared-"
#: A rebuilt shared index (``beater/store/repair.py``) is ``<prefix>_shared-<n>_g<k>``, its
#: generation ``k``, reached through the alias ``<prefix>_shared-<n>``.
GENERATION_MARK = "_g"
#: The total-fields limit of a new shared index (``index.mapping.total_fields.limit``).
INDEX_FIELD_LIMIT = 10_000
#: What the engine counts for a ``percolator`` field beyond itself (its hidden sub-fields),
#: measured on Elasticsearch 7.17: ``count_fields`` follows the engine's count.
PERCOLATOR_SUBFIELDS = 5
# Lifecycle (beater/queries/lifecycle.py): only active queries are percolated; an
# inactive one is removed once idle for the grace period.
ACTIVE_FIELD = "estrom_active"
LAST_ACTIVE_FIELD = "estrom_last_active"
IDLE_SINCE_FIELD = "estrom_idle_since"
LIFECYCLE_MAPPING = {
    ACTIVE_FIELD: {"type": "boolean"},
    LAST_ACTIVE_FIELD: {"type": "date", "format": "epoch_millis"},
    IDLE_SINCE_FIELD: {"type": "date", "format": "epoch_millis"},
}
#: What every shared percolator index maps besides the documents' fields.
OWN_MAPPING = {
    TARGET_FIELD: {"type": "keyword"},
    REGISTERED_FIELD: {"type": "date", "format": "epoch_millis"},
    SIGNPOST_FIELD: {"type": "keyword"},
    SIGNPOST_GROUP_FIELD: {"type": "integer"},
    NEW_FIELDS_FIELD: {"type": "keyword"},
    PRINCIPAL_FIELD: {"type": "keyword"},
    **LIFECYCLE_MAPPING,
}

TEXT_WITH_KEYWORD: dict[str, Any] = {
    "type": "text",
    "copy_to": ALL_FIELD,
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}
# Field types that accept copy_to; others (objects, geo, ...) are copied as they are.
_COPYABLE = frozenset(
    {
        "text",
        "keyword",
        "long",
        "integer",
        "short",
        "byte",
        "double",
        "float",
        "half_float",
        "scaled_float",
        "unsigned_long",
        "date",
        "date_nanos",
        "boolean",
        "ip",
        "wildcard",
    }
)


def percolator_index_body(
    shards: int | None = None, replicas: int | None = None, field_limit: int = INDEX_FIELD_LIMIT
) -> dict[str, Any]:
    """Settings and mapping of a new percolator index."""
    dynamic_templates = [
        {"strings": {"match_mapping_type": "string", "mapping": TEXT_WITH_KEYWORD}},
        {"longs": {"match_mapping_type": "long", "mapping": {"type": "long", "copy_to": ALL_FIELD}}},
        {"doubles": {"match_mapping_type": "double", "mapping": {"type": "float", "copy_to": ALL_FIELD}}},
        {"booleans": {"match_mapping_type": "boolean", "mapping": {"type": "boolean", "copy_to": ALL_FIELD}}},
        {"dates": {"match_mapping_type": "date", "mapping": {"type": "date", "copy_to": ALL_FIELD}}},
    ]
    return {
        "settings": {
            # ESTROM_QUERY_INDEX_SHARDS / _REPLICAS; unset: the engine's default.
            **({} if shards is None else {"number_of_shards": shards}),
            **({} if replicas is None else {"number_of_replicas": replicas}),
            "index.query.default_field": ALL_FIELD,
            # A document whose number or date does not parse loses that field
            # for matching instead of failing the whole batch.
            "index.mapping.ignore_malformed": True,
            "index.mapping.total_fields.limit": field_limit,
        },
        "mappings": {
            "dynamic_templates": dynamic_templates,
            "properties": {
                QUERY_FIELD: {"type": "percolator"},
                ALL_FIELD: {"type": "text"},
                SID_FIELD: {"type": "keyword"},
                META_FIELD: {"type": "object", "enabled": False},
                **OWN_MAPPING,
            },
        },
    }


def lookup(properties: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of a dotted field path inside a ``properties`` tree."""
    node: dict[str, Any] | None = {"properties": properties}
    for part in path.split("."):
        if node is None:
            return None
        node = (node.get("properties") or {}).get(part)
    return node


def value_above(properties: dict[str, Any], path: str) -> str | None:
    """The enclosing field of ``path`` that ``properties`` maps as a value, if any.

    ``host.name`` cannot be mapped where ``host`` is a ``keyword`` (Logstash's
    string ``host`` beside ECS's object): the engine refuses both the mapping
    and every document carrying the object. A multi-field (``message.keyword``
    under a ``text`` ``message``) is not such a conflict.
    """
    node: dict[str, Any] = {"properties": properties}
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        child = (node.get("properties") or {}).get(part)
        if child is None:
            return None
        if "properties" not in child and field_type(child) not in ("object", "nested"):
            rest = ".".join(parts[i + 1 :])
            return None if rest in (child.get("fields") or {}) else ".".join(parts[: i + 1])
        node = child
    return None


def leaf_fields(properties: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the concrete fields of a mapping (nested objects are left out)."""
    found: set[str] = set()
    for name, mapping in properties.items():
        path = prefix + name
        if mapping.get("type") == "nested":
            continue
        if "properties" in mapping:
            found |= leaf_fields(mapping["properties"], path + ".")
        else:
            found.add(path)
    return found


def field_mapping_for(name: str, document_properties: dict[str, Any]) -> dict[str, Any]:
    """What to map ``name`` as in the percolator index."""
    known = lookup(document_properties, name)
    if known and "properties" not in known:
        mapping = dict(known)
        if mapping.get("type", "object") in _COPYABLE:
            mapping["copy_to"] = ALL_FIELD
        return mapping
    return dict(TEXT_WITH_KEYWORD)


def signpost_id(group: int, target_key: str) -> str:
    """A signpost's document id, one per target and shared index (a later registration
    refreshes it): never a sid (16 hex digits), so no lookup of a sid finds it.

    ``target_key``: ``common.query.targets.percolator_suffix`` of the target.
    """
    return f"signpost-{group}-{target_key}"


def signpost_document(canonical: str, group: int, target_key: str, now_ms: int) -> dict[str, Any]:
    """Written into ``_shared-0`` when a query of ``canonical`` is placed in shared index ``group`` > 0.

    A beater that does not know yet that ``canonical`` has queries there
    searches only the indices it knows, ``_shared-0`` always among them; the
    signpost matches every document (``match_all``) and, being recent, is in
    every batch's scope (``beater/matching/percolate.py``): the beater learns the
    index and percolates the batch there too, so a query placed apart is
    matched by every beater from the first batch after it was registered, as
    any other. It has no target and no subscriber: the lifecycle sweeps
    deactivate and remove it like an abandoned query.
    """
    return {
        QUERY_FIELD: {"match_all": {}},
        SID_FIELD: signpost_id(group, target_key),  # unique: percolation pages on it
        SIGNPOST_FIELD: canonical,
        SIGNPOST_GROUP_FIELD: group,
        REGISTERED_FIELD: now_ms,
        **active_doc(now_ms),
    }


def active_doc(now_ms: int) -> dict[str, Any]:
    """The lifecycle fields of a query that is percolated from ``now_ms`` on."""
    return {ACTIVE_FIELD: True, LAST_ACTIVE_FIELD: now_ms, IDLE_SINCE_FIELD: None}


def query_document(
    index: str,
    query: PreparedQuery,
    now_ms: int,
    new_fields: frozenset[str] = frozenset(),
    principal: str | None = None,
) -> dict[str, Any]:
    """The stored document of ``query`` on ``index`` (its id is the sid), as registration writes it.

    Active from registration on: its subscriber is about to come.
    ``new_fields``: the fields it names that no index of ``index`` maps;
    ``principal``: the reader registering it, where known (both for the
    field budgets, ``beater/store/budget.py``).
    """
    doc = {
        QUERY_FIELD: query.stored or query.dsl,
        SID_FIELD: query.sid(index),
        TARGET_FIELD: index,
        REGISTERED_FIELD: now_ms,
        META_FIELD: {"index": index, "query": query.canonical, "registered_at": now_ms / 1000},
        **active_doc(now_ms),
    }
    if new_fields:
        doc[NEW_FIELDS_FIELD] = sorted(new_fields)
    if principal:
        doc[PRINCIPAL_FIELD] = principal
    return doc


def shared_index(prefix: str, n: int) -> str:
    """The name of the ``n``-th shared percolator index (0: the one every target starts in)."""
    return f"{prefix}{SHARED_SUFFIX}{n}"


def shared_number(prefix: str, name: str) -> int | None:
    """``n`` of a shared percolator index's name, None for any other index (an older per-target one).

    A rebuilt generation (``<prefix>_shared-<n>_g<k>``) is shared index ``n`` too.
    """
    found = _shared_parts(prefix, name)
    return None if found is None else found[0]


def generation(prefix: str, name: str) -> int:
    """``k`` of a rebuilt shared index ``<prefix>_shared-<n>_g<k>``; 0 for ``<prefix>_shared-<n>`` itself."""
    found = _shared_parts(prefix, name)
    return 0 if found is None else found[1]


def generation_index(prefix: str, n: int, k: int) -> str:
    """The name of generation ``k`` of shared index ``n`` (0: the original name)."""
    base = shared_index(prefix, n)
    return base if k == 0 else f"{base}{GENERATION_MARK}{k}"


def _shared_parts(prefix: str, name: str) -> tuple[int, int] | None:
    head = prefix + SHARED_SUFFIX
    if not name.startswith(head):
        return None
    rest = name[len(head) :]
    number, mark, gen = rest.partition(GENERATION_MARK)
    if not number.isdigit() or (mark and not gen.isdigit()):
        return None
    return int(number), int(gen) if mark else 0


def count_fields(properties: dict[str, Any]) -> int:
    """The fields of a mapping as the engine counts them against ``index.mapping.total_fields.limit``.

    Every field and object, every multi-field (``message.keyword``), and a
    percolator field's hidden sub-fields.
    """
    total = 0
    stack = [properties]
    while stack:
        props = stack.pop()
        for mapping in props.values():
            if not isinstance(mapping, dict):
                continue
            total += 1 + len(mapping.get("fields") or {})
            if mapping.get("type") == "percolator":
                total += PERCOLATOR_SUBFIELDS
            sub = mapping.get("properties")
            if isinstance(sub, dict):
                stack.append(sub)
    return total


def nest(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Dotted field names and their mappings as a ``properties`` tree (objects for the dots)."""
    tree: dict[str, Any] = {}
    for path, mapping in fields.items():
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}).setdefault("properties", {})
        node[parts[-1]] = mapping
    return tree


def prune(properties: dict[str, Any], paths: set[str] | frozenset[str]) -> dict[str, Any]:
    """The part of a mapping that maps ``paths`` (dotted), enclosing objects as they are mapped.

    A path that is a multi-field (``message.raw``) keeps its parent field; a
    path the mapping does not have is left out.
    """
    out: dict[str, Any] = {}
    for path in sorted(paths):
        parts = path.split(".")
        src: dict[str, Any] = properties
        dst: dict[str, Any] = out
        for i, part in enumerate(parts):
            mapping = src.get(part)
            if not isinstance(mapping, dict):
                break
            last = i == len(parts) - 1
            sub = mapping.get("properties")
            if last or not isinstance(sub, dict):
                # the field itself, or a value whose multi-fields hold the rest of the path
                dst[part] = mapping
                break
            kept = dst.get(part)
            if kept is None:
                kept = dst[part] = {
                    **{k: v for k, v in mapping.items() if k != "properties"},
                    "properties": {},
                }
            src, dst = sub, kept["properties"]
    return out


def field_type(mapping: dict[str, Any] | None) -> str:
    """The type a field mapping gives (an object without a type: ``object``)."""
    if not mapping:
        return "object"
    return str(mapping.get("type", "object"))
