"""Server metrics: rendered, then parsed back with Prometheus's own text parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import modelseal
from modelseal.serving.health import State
from modelseal.serving.metrics import RequestMetrics, ServerMetrics, batch_size_buckets
from modelseal.types import NamedArrays

ROUTES = ("/predict", "/v2/models/{name}/infer", "/health")


def samples(metrics: ServerMetrics | RequestMetrics) -> dict[str, list[Sample]]:
    body = metrics.render()
    by_name: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append(sample)
    return by_name


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matches = [s.value for s in found[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, found.get(name))
    return matches[0]


def test_every_metric_is_exposed_with_its_name() -> None:
    metrics = ServerMetrics(max_batch_size=8)
    names = set(samples(metrics))
    for expected in (
        "modelseal_queue_depth",
        "modelseal_state",
        "modelseal_probe_ok",
        "modelseal_drift_warning",
        "modelseal_inference_duration_seconds_count",
        "modelseal_batch_size_rows_bucket",
        "modelseal_queue_wait_seconds_sum",
    ):
        assert expected in names, expected
    assert value(samples(metrics), "modelseal_state", modelseal_state="loading") == 1


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    metrics = RequestMetrics(ROUTES)
    metrics.observe("/predict", "POST", 200, 0.002)
    metrics.observe("/predict", "POST", 200, 0.004)
    metrics.observe("/predict", "POST", 422, 0.001)
    metrics.observe("/no/such/path/123", "BREW", 404, 0.001)
    found = samples(metrics)
    assert (
        value(found, "modelseal_requests_total", route="/predict", method="POST", status="200") == 2
    )
    assert value(found, "modelseal_requests_total", route="/predict", status="422") == 1
    # Raw paths and odd methods fold into bounded labels.
    assert (
        value(found, "modelseal_requests_total", route="other", method="OTHER", status="404") == 1
    )
    assert value(found, "modelseal_request_duration_seconds_count", route="/predict") == 3
    assert value(
        found, "modelseal_request_duration_seconds_sum", route="/predict"
    ) == pytest.approx(0.007)
    assert (
        value(found, "modelseal_request_duration_seconds_bucket", route="/predict", le="0.0025")
        == 2
    )


def test_batches_inference_and_queue() -> None:
    metrics = ServerMetrics(max_batch_size=8)
    metrics.observe_batch(1, 0.0)
    metrics.observe_batch(5, 0.003)
    metrics.observe_batch(8, 0.010)
    depth = [3]
    metrics.track_queue_depth(lambda: depth[0])

    def predict(inputs: NamedArrays) -> NamedArrays:
        return inputs

    timed = metrics.timed(predict)
    assert timed({}) == {}
    found = samples(metrics)
    assert value(found, "modelseal_batch_size_rows_bucket", le="1.0") == 1
    assert value(found, "modelseal_batch_size_rows_bucket", le="4.0") == 1
    assert value(found, "modelseal_batch_size_rows_bucket", le="8.0") == 3
    assert value(found, "modelseal_batch_size_rows_sum") == 14
    assert value(found, "modelseal_queue_wait_seconds_count") == 3
    assert value(found, "modelseal_inference_duration_seconds_count") == 1
    assert value(found, "modelseal_queue_depth") == 3
    depth[0] = 0
    assert value(samples(metrics), "modelseal_queue_depth") == 0


def test_state_probe_drift_device_and_build() -> None:
    metrics = ServerMetrics(max_batch_size=8)
    assert value(samples(metrics), "modelseal_drift_warning") == 0
    metrics.set_state(State.READY)
    metrics.set_probe(False)
    metrics.set_verdict("load-failed")
    metrics.set_verdict("drift")
    metrics.set_serving_despite_drift()
    metrics.set_device("cuda:0", "NVIDIA H100 80GB HBM3")
    metrics.set_build("iris", "3", "sha256:abc")
    found = samples(metrics)
    assert value(found, "modelseal_state", modelseal_state="ready") == 1
    assert value(found, "modelseal_state", modelseal_state="loading") == 0
    assert value(found, "modelseal_probe_ok") == 0
    assert [s.labels["verdict"] for s in found["modelseal_drift_verdict"]] == ["drift"]
    assert value(found, "modelseal_drift_warning") == 1
    assert (
        value(found, "modelseal_device_info", device="cuda:0", gpu_name="NVIDIA H100 80GB HBM3")
        == 1
    )
    assert (
        value(
            found,
            "modelseal_build_info",
            modelseal_version=modelseal.__version__,
            model_name="iris",
            model_version="3",
            seal_digest="sha256:abc",
        )
        == 1
    )


def test_registries_are_private() -> None:
    first = ServerMetrics(max_batch_size=8)
    second = ServerMetrics(max_batch_size=8)
    first.set_state(State.READY)
    second.observe_batch(4, 0.001)
    assert value(samples(first), "modelseal_state", modelseal_state="ready") == 1
    assert value(samples(second), "modelseal_state", modelseal_state="ready") == 0
    assert value(samples(first), "modelseal_batch_size_rows_count") == 0
    assert value(samples(second), "modelseal_batch_size_rows_count") == 1
    requests = RequestMetrics(ROUTES)
    requests.observe("/health", "GET", 200, 0.001)
    assert "modelseal_requests_total" in samples(requests)
    assert "modelseal_requests_total" not in samples(first)


def test_batch_size_buckets() -> None:
    assert batch_size_buckets(1) == (1,)
    assert batch_size_buckets(8) == (1, 2, 4, 8)
    assert batch_size_buckets(100) == (1, 2, 4, 8, 16, 32, 64, 100)
