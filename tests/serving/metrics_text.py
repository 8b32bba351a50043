"""Reading a server's /metrics with Prometheus's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric_samples(url: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric family on ``url``/metrics, by their sorted labels."""
    text = httpx.get(url + "/metrics", timeout=30).text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for found in text_string_to_metric_families(text)
        if found.name == family
        for sample in found.samples
        if not sample.name.endswith("_created")
    }
