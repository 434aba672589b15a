"""Which percolate request shape to use for a small batch: learned, not guessed.

Below a hundred or so documents, whether one ``documents`` request or an
``_msearch`` of single-document searches costs the engine less depends on the
stored queries and on how many of them each document matches: measured here,
each shape has won by 2x (the retired percolate-modes study, docs/performance.md
"Answered questions", with ten matches per document favours ``msearch``;
``bench/compare/`` with one match in ten documents favours ``documents``).
So ``auto`` measures: the wall time per document of each shape, per
percolator index and batch-size band, as a moving average; the cheaper
shape is used, and the other one is tried again now and then, in case the
workload changed.
"""

from __future__ import annotations

SHAPES = ("documents", "msearch")

#: One batch in this many (per index and band) tries the shape that looks dearer.
EXPLORE_EVERY = 32
#: Weight of the newest measurement in the moving average.
ALPHA = 0.2


def band(size: int) -> int:
    """Batch sizes within a factor of two share what was learned (2-3, 4-7, 8-15, ...)."""
    return size.bit_length()


class ShapeChooser:
    """Moving-average cost per document of each shape, and the choice it implies."""

    def __init__(self, explore_every: int = EXPLORE_EVERY, alpha: float = ALPHA) -> None:
        self.explore_every = explore_every
        self.alpha = alpha
        self._cost: dict[tuple[str, int, str], float] = {}
        self._decisions: dict[tuple[str, int], int] = {}

    def choose(self, pindex: str, size: int) -> str:
        key = (pindex, band(size))
        n = self._decisions.get(key, 0)
        self._decisions[key] = n + 1
        costs = {shape: self._cost.get((*key, shape)) for shape in SHAPES}
        for shape, cost in costs.items():
            if cost is None:
                return shape
        best = min(SHAPES, key=lambda s: costs[s] or 0.0)
        if n % self.explore_every == self.explore_every - 1:
            return next(s for s in SHAPES if s != best)
        return best

    def record(self, pindex: str, size: int, shape: str, seconds: float) -> None:
        """A batch of ``size`` documents took ``seconds`` with ``shape`` (successful requests only)."""
        key = (pindex, band(size), shape)
        per_doc = seconds / max(size, 1)
        old = self._cost.get(key)
        self._cost[key] = per_doc if old is None else old + self.alpha * (per_doc - old)

    def costs(self, pindex: str, size: int) -> dict[str, float | None]:
        """What was learned for this index and band (seconds per document), for logs and tests."""
        return {shape: self._cost.get((pindex, band(size), shape)) for shape in SHAPES}
