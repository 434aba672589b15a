"""``fields=`` on live hits, in every format, and the shared views behind it, through the real stack."""

from __future__ import annotations

import pytest

from devstack.metrics_page import metric
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_fields_cut_live_hits_in_every_format_keeping_index_and_id(tailor, beater, index):
    params = {"i": index, "q": "kind:cut", "fields": "kind,host.name,tags*", "limit": 2}
    tails = {fmt: Tail(tailor.url, {**params, "format": fmt}) for fmt in ("json", "ndjson", "sse")}
    send(
        beater.url,
        index,
        [
            {
                "_id": "d1",
                "kind": "cut",
                "message": "dropped",
                "host": {"name": "web-1", "ip": "10.0.0.1"},
                "tags": ["a"],
                "tags_extra": 1,
            },
            {"kind": "cut", "other": True},
        ],
    )
    want = [
        {
            "_index": index,
            "_source": {"kind": "cut", "host": {"name": "web-1"}, "tags": ["a"], "tags_extra": 1},
            "_id": "d1",
        },
        {"_index": index, "_source": {"kind": "cut"}},
    ]
    for tail in tails.values():
        tail.wait_end(30)
        tail.close()
    assert tails["json"].document()["hits"] == want
    assert tails["ndjson"].hits == want
    assert tails["sse"].hits == want


def test_tails_of_one_shape_share_a_view_that_goes_with_the_last(start_tailor, beater, index):
    tailor = start_tailor()
    shape = {"i": index, "q": "kind:shared", "fields": "n", "delay": "1s", "format": "ndjson"}
    tails = [Tail(tailor.url, shape) for _ in range(3)]
    other = Tail(tailor.url, {**shape, "delay": "2s"})
    plain = Tail(tailor.url, {"i": index, "q": "kind:shared", "format": "ndjson"})
    assert metric(tailor.url, "estrom_tailor_views") == 2
    assert metric(tailor.url, "estrom_tailor_subscriptions") == 1
    send(beater.url, index, [{"kind": "shared", "n": 1, "@timestamp": "2024-01-01T00:00:00Z"}])
    for tail in [*tails, other]:
        assert tail.wait_hits(1, 30) == [{"_index": index, "_source": {"n": 1}}]
    assert plain.wait_hits(1, 30)[0]["_source"]["kind"] == "shared"
    for tail in [*tails, other, plain]:
        tail.close()
    wait_until(lambda: metric(tailor.url, "estrom_tailor_views") == 0, what="views dropped")
    wait_until(lambda: metric(tailor.url, "estrom_tailor_subscriptions") == 0, what="sid unsubscribed")
    assert metric(tailor.url, "estrom_tailor_view_held_hits") == 0
