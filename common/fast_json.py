"""JSON at C speed on the hot path: orjson where it reads and writes what the standard library does.

Why: reading every ingested document and writing it again into the engine's
percolate request was the largest share of the beater's CPU per document
(docs/performance.md): the standard library's ``json`` takes 2.8
µs to read a 230-byte log line and 3.3 µs to write it, orjson 0.85 and 0.24.

orjson differs from ``json`` in a few places, each handled here so that
callers get the standard library's outcome:

* it refuses ``NaN``/``Infinity``, numbers past double range, unpaired
  surrogates and nesting past 1,024 levels: callers fall back to ``json``,
  which reads them (or says why not) as before;
* it reads an integer past 64 bits as a float: :func:`exact_for_orjson` says
  whether a text may hold one (a run of 19 digits), and such a text is read
  by ``json`` alone;
* it cannot write integers past 64 bits, non-string keys or nesting past
  254 levels: :class:`EngineSerializer` writes those with ``json``.
"""

from __future__ import annotations

from typing import Any

import orjson
from elasticsearch.serializer import JSONSerializer

#: What orjson raises on a text it will not read (a ValueError, like ``json``'s).
JSONDecodeError = orjson.JSONDecodeError
fast_loads = orjson.loads
fast_dumps_bytes = orjson.dumps

_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
#: 2**63 has 19 digits: a shorter run of digits is an integer orjson reads exactly.
_LONG_DIGIT_RUN = b"0" * 19


def exact_for_orjson(raw: bytes) -> bool:
    """False when ``raw`` may hold an integer orjson would read as a float (19 digits in a row).

    Two C passes over the bytes (about 0.3 µs for a 230-byte document);
    digits inside strings only make the answer conservative.
    """
    return _LONG_DIGIT_RUN not in raw.translate(_DIGITS_TO_ZERO)


class EngineSerializer(JSONSerializer):
    """The engine client's JSON: orjson for requests and answers, the standard library where orjson differs.

    Given to elasticsearch-py and opensearch-py as ``serializer`` (they share
    its interface); ``dumps`` returns text, as theirs does (``_msearch`` and
    ``_bulk`` bodies join lines as text).
    """

    def dumps(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # JSONEncodeError: big integer, non-string key, deep nesting, unknown type
            return super().dumps(data)

    def loads(self, s: Any) -> Any:
        raw = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
        if exact_for_orjson(raw):
            try:
                return orjson.loads(raw)
            except JSONDecodeError:
                pass
        return super().loads(s)
