"""One route table: every route is routed, labelled in the metrics and documented in OpenAPI,
and nothing else is. In-process ASGI calls (the server is not started: routing only)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelseal import open_seal
from modelseal.serving.app import create_app
from modelseal.serving.config import ServeConfig
from modelseal.serving.core import ModelServer
from modelseal.serving.device import DeviceChoice
from modelseal.serving.openapi import openapi_document
from modelseal.serving.repository import ModelRepository
from modelseal.serving.routes import ROUTES


def concrete(path: str) -> str:
    return path.replace("{name}", "digits").replace("{version}", "1.0.0")


def test_every_route_is_routed_counted_under_its_template_and_documented(
    demo_seal_path: Path,
) -> None:
    seal = open_seal(demo_seal_path)
    models = ModelRepository([ModelServer(seal, ServeConfig(), DeviceChoice("cpu", None))])

    async def main() -> tuple[dict[str, int], str]:
        transport = httpx.ASGITransport(app=create_app(models).asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses = {
                f"{route.method} {route.path}": (
                    await client.request(route.method, concrete(route.path), content=b"{}")
                ).status_code
                for route in ROUTES
            }
            metrics = (await client.get("/metrics")).text
        return statuses, metrics

    statuses, metrics = asyncio.run(main())
    assert all(status not in (404, 405) for status in statuses.values()), statuses
    counted = {
        f"{sample.labels['method']} {sample.labels['route']}"
        for family in text_string_to_metric_families(metrics)
        if family.name == "modelseal_requests"
        for sample in family.samples
        if sample.name == "modelseal_requests_total"
    }
    assert counted == set(statuses)
    document = openapi_document(seal, ROUTES)
    documented = {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == set(statuses)
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert {int(status) for status in operation["responses"]} == {200, *route.errors}
        names = re.findall(r"\{(\w+)\}", route.path)
        assert [p["name"] for p in operation.get("parameters", [])] == names
