"""``estrom counts --delay`` piped against a real tailor: a window sent again is a line ending in (revised)."""

from __future__ import annotations

import math
import time

import pytest

from tests.tailor.helpers import marker, send
from tests.tailor.test_counts_delay import doc

pytestmark = pytest.mark.integration


def test_a_late_hit_prints_its_window_again_marked_revised(cli, tailor, beater, index):
    tag = marker()
    counts = cli(
        "counts", "--tailor", tailor.url, "-i", index, "--by", "service", "--delay", "2s", f"tag:{tag}"
    )
    counts.line()  # a first window sent: the ones after it are live
    w = math.floor(time.time())
    send(beater.url, index, [doc(tag, "api", w + 0.2), doc(tag, "api", w + 0.4)])
    while not (line := counts.line()).endswith(" total=2 api=2"):  # its first frame, or a revision
        pass
    t = line.split(" ")[0]
    send(beater.url, index, [doc(tag, "web", w + 0.6)])  # its window was printed: late for sure
    while " (revised)" not in (line := counts.line()):
        pass
    assert line == f"{t} total=3 api=2 web=1 (revised)"
    counts.stop()
