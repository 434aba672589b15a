"""A service's ``/metrics`` page as numbers, read with ``prometheus_client``'s own parser.

Tests and benchmarks ask the beater and tailor for their counters; one
reader, the exposition format's reference parser, so that whatever the
services write (hand-rolled text or ``prometheus_client``'s, with its
``_created`` and histogram samples) is read the way Prometheus reads it.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scrape(base_url: str, timeout: float = 10.0) -> list[Sample]:
    """Every sample of ``<base_url>/metrics``."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def sample_key(sample: Sample) -> str:
    """``name{label="value",...}`` (labels sorted), or the bare name of an unlabelled sample."""
    if not sample.labels:
        return sample.name
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
    return f"{sample.name}{{{labels}}}"


def samples(base_url: str, prefix: str = "") -> dict[str, float]:
    """``{sample_key: value}`` of the page, ``prefix`` removed from the names that have it."""
    return {sample_key(s).removeprefix(prefix): s.value for s in scrape(base_url)}


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        s.value
        for s in scrape(base_url)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
