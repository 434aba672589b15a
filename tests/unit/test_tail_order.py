"""``delay=``'s order: values compared as the engine sorts them, hits released in order, late, early, keyless."""

from __future__ import annotations

from tailor.views.order import OrderBuffer, Released, order_key

MS = 1000.0


def key(source, field="@timestamp"):
    return order_key(source, field)


def test_dates_and_epoch_millis_compare_as_one_time_line():
    iso = key({"@timestamp": "2024-01-01T00:00:01Z"})
    millis = key({"@timestamp": 1704067201000})
    assert iso == millis
    assert key({"@timestamp": "2024-01-01T00:00:00.5Z"}) < iso
    assert key({"@timestamp": "2024-01-01T01:00:01+01:00"}) == iso  # the zone counts
    assert key({"@timestamp": "2024-01-01T00:00:01"}) == iso  # no zone: UTC, as the engine reads it
    assert key({"@timestamp": "2024-01-01"}) < iso
    assert key({"@timestamp": "1704067201000"}) == iso  # epoch millis as a string


def test_text_sorts_after_every_number_and_missing_values_have_no_key():
    assert key({"@timestamp": 5}) < key({"@timestamp": "not a date"}) < key({"@timestamp": "zz"})
    assert key({}) is None
    assert key({"@timestamp": None}) is None
    assert key({"@timestamp": {"nested": 1}}) is None
    assert key("not an object") is None


def test_dotted_paths_arrays_and_flat_dotted_keys():
    assert key({"event": {"created": 3}}, "event.created") == key({"event.created": 3}, "event.created")
    assert key({"t": [30, 10, 20]}, "t") == key({"t": 10}, "t")  # ascending sort takes the smallest
    assert key({"a": [{"b": 7}, {"b": 2}]}, "a.b") == key({"a": {"b": 2}}, "a.b")


def items(released):
    return [(r.item, r.late, r.early) for r in released]


def buffer(delay=2.0, max_bytes=10_000):
    return OrderBuffer[str](delay, max_bytes)


def test_hits_are_held_for_the_delay_and_released_in_order():
    b = buffer()
    assert b.add("c", key({"@timestamp": 3}), now=0.0, size=1) == []
    assert b.add("a", key({"@timestamp": 1}), now=0.5, size=1) == []
    assert b.add("b", key({"@timestamp": 2}), now=1.0, size=1) == []
    assert (b.held, b.held_bytes) == (3, 3)
    assert b.next_due() == 2.0
    assert b.due(1.9) == []
    # c's time is up: everything not greater than c goes with it, smallest first.
    assert items(b.due(2.0)) == [("a", False, False), ("b", False, False), ("c", False, False)]
    assert (b.held, b.held_bytes, b.next_due()) == (0, 0, None)


def test_a_hit_leaves_early_only_to_keep_the_order():
    b = buffer()
    b.add("late-arriving small", key({"@timestamp": 1}), now=1.0, size=1)
    b.add("big", key({"@timestamp": 9}), now=1.5, size=1)
    # The first hit's time is up: nothing held is smaller, so "big" waits for its own time.
    assert items(b.due(3.0)) == [("late-arriving small", False, False)]
    assert b.next_due() == 3.5
    assert items(b.due(3.5)) == [("big", False, False)]


def test_equal_values_keep_their_arrival_order():
    b = buffer()
    for name in "xyz":
        b.add(name, key({"@timestamp": 5}), now=0.0, size=1)
    assert [r.item for r in b.due(2.0)] == ["x", "y", "z"]


def test_a_hit_older_than_one_released_goes_at_once_marked_late_and_an_equal_one_in_order():
    b = buffer()
    b.add("t5", key({"@timestamp": 5}), now=0.0, size=1)
    b.due(2.0)
    assert b.add("t3", key({"@timestamp": 3}), now=2.1, size=1) == [Released("t3", late=True)]
    assert b.add("t5 again", key({"@timestamp": 5}), now=2.2, size=1) == [Released("t5 again")]
    assert b.add("t6", key({"@timestamp": 6}), now=2.3, size=1) == []  # newer: held as usual
    assert b.held == 1


def test_hits_without_a_value_keep_arrival_order_go_when_their_time_is_up_and_are_never_late():
    b = buffer()
    b.add("t9", key({"@timestamp": 9}), now=0.0, size=1)
    b.add("none-1", None, now=0.5, size=1)
    b.add("t1", key({"@timestamp": 1}), now=1.0, size=1)
    b.add("none-2", None, now=1.5, size=1)
    assert items(b.due(2.0)) == [("t1", False, False), ("t9", False, False)]
    assert b.next_due() == 2.5
    assert items(b.due(3.5)) == [("none-1", False, False), ("none-2", False, False)]


def test_over_the_bound_the_smallest_values_leave_early_in_order():
    b = buffer(max_bytes=10)
    b.add("t3", key({"@timestamp": 3}), now=0.0, size=4)
    b.add("t1", key({"@timestamp": 1}), now=0.0, size=4)
    released = b.add("t2", key({"@timestamp": 2}), now=0.0, size=4)
    assert items(released) == [("t1", False, True)]
    assert (b.held, b.held_bytes) == (2, 8)
    # What went early sets the order: an older hit now is late.
    assert b.add("t0", key({"@timestamp": 0}), now=0.1, size=4) == [Released("t0", late=True)]
    assert [r.item for r in b.due(2.0)] == ["t2", "t3"]


def test_over_the_bound_with_only_keyless_hits_the_oldest_leaves():
    b = buffer(max_bytes=5)
    b.add("first", None, now=0.0, size=3)
    assert items(b.add("second", None, now=0.1, size=3)) == [("first", False, True)]


def test_drain_gives_everything_in_order():
    b = buffer()
    b.add("t2", key({"@timestamp": 2}), now=0.0, size=1)
    b.add("none", None, now=0.0, size=1)
    b.add("t1", key({"@timestamp": 1}), now=0.0, size=1)
    assert [r.item for r in b.drain()] == ["t1", "t2", "none"]
    assert (b.held, b.held_bytes, b.next_due()) == (0, 0, None)


def test_released_marks_do_not_pile_up_behind_a_held_hit():
    """Hits released early behind one still held leave marks in the deadline queue: bounded."""
    b = buffer(delay=100.0, max_bytes=1)
    b.add("greatest", key({"@timestamp": 10**9}), now=0.0, size=1)
    for n in range(1000):
        assert items(b.add(n, key({"@timestamp": n}), now=1.0, size=1)) == [(n, False, True)]
        b.due(1.0)
    assert b.held == 1
    assert len(b._marks) <= 2 * b.held + 16
    assert [r.item for r in b.due(100.0)] == ["greatest"]
