"""The request-shape chooser: tries each shape, then keeps the cheaper one, re-trying the other now and then."""

from __future__ import annotations

from beater.matching.percolate_shape import ShapeChooser, band


def test_bands_group_sizes_within_a_factor_of_two() -> None:
    assert band(2) == band(3) != band(4)
    assert band(64) == band(127) != band(128)


def test_each_shape_is_measured_before_any_is_preferred() -> None:
    chooser = ShapeChooser()
    first = chooser.choose("p", 10)
    chooser.record("p", 10, first, 0.010)
    second = chooser.choose("p", 10)
    assert {first, second} == {"documents", "msearch"}


def test_the_cheaper_shape_wins_and_the_other_is_retried_now_and_then() -> None:
    chooser = ShapeChooser(explore_every=8)
    chooser.record("p", 10, "documents", 0.010)  # 1 ms a document
    chooser.record("p", 10, "msearch", 0.030)  # 3 ms a document
    picks = [chooser.choose("p", 12) for _ in range(32)]
    assert picks.count("msearch") == 4
    assert all(p == "msearch" for i, p in enumerate(picks) if i % 8 == 7)


def test_the_choice_follows_a_workload_that_changed() -> None:
    chooser = ShapeChooser(explore_every=4, alpha=0.5)
    chooser.record("p", 20, "documents", 0.020)
    chooser.record("p", 20, "msearch", 0.040)
    for _ in range(6):  # msearch got cheap: each re-try says so
        chooser.record("p", 20, "msearch", 0.005)
    assert chooser.choose("p", 20) == "msearch"


def test_indices_and_bands_learn_apart() -> None:
    chooser = ShapeChooser()
    chooser.record("a", 10, "documents", 0.010)
    chooser.record("a", 10, "msearch", 0.050)
    assert chooser.costs("a", 10) == {"documents": 0.001, "msearch": 0.005}
    assert chooser.costs("b", 10) == {"documents": None, "msearch": None}
    assert chooser.costs("a", 40) == {"documents": None, "msearch": None}
