"""Server checks (``--url``): alive, ready, serving the seal we hold, not drifted, on the
device it was validated for, and answering a real golden row within tolerance, in time.

The routes are the ones every modelseal server has (OIP v2 health and infer, ``/health``,
``/seal``, ``/metrics``); liveness, readiness and the inference are plain OIP v2, so those
checks also judge any other Open Inference Protocol server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelseal.doctor import http
from modelseal.doctor.report import Check, Facts, Status, new_check
from modelseal.doctor.subject import SealFacts
from modelseal.golden.compare import OutputComparison, compare_output
from modelseal.golden.store import load_golden
from modelseal.golden.tolerance import parse_policy
from modelseal.oip import DTYPES, json_tensors
from modelseal.serving.device import GPU_CHECKLIST
from modelseal.types import NamedArrays

DEFAULT_LATENCY_BUDGET_S = 1.0
STARTING_STATES = frozenset({"fetching", "loading", "verifying", "warming"})


@dataclass(frozen=True)
class ServerFacts:
    """What the server answered on each route the checks read."""

    url: str
    live: http.Reply
    ready: http.Reply
    health: http.Reply
    seal: http.Reply
    metrics: http.Reply


def gather_server_facts(url: str) -> ServerFacts:
    base = url.rstrip("/")
    return ServerFacts(
        url=base,
        live=http.get(f"{base}/v2/health/live"),
        ready=http.get(f"{base}/v2/health/ready"),
        health=http.get(f"{base}/health"),
        seal=http.get(f"{base}/seal"),
        metrics=http.get(f"{base}/metrics"),
    )


def server_checks(
    facts: ServerFacts, seal: SealFacts | None, latency_budget_s: float = DEFAULT_LATENCY_BUDGET_S
) -> list[Check]:
    if facts.live.status is None:
        unreachable = f"{facts.url} does not answer: {facts.live.error}"
        return [
            new_check(
                "server", "live", "liveness", Status.FAIL, unreachable,
                "check the URL and that the server process runs (docker ps, kubectl get pods); "
                "a refused connection means nothing listens on that port",
            ),
            *(
                new_check("server", name, title, Status.SKIPPED, "the server does not answer")
                for name, title in _AFTER_LIVENESS
            ),
        ]  # fmt: skip
    inference, latency = check_inference(facts.url, seal, latency_budget_s)
    return [
        check_live(facts.live),
        check_ready(facts.ready, facts.health),
        check_digest(facts.seal, seal),
        check_drift(facts.seal, facts.ready),
        check_device(facts.health, seal),
        inference,
        latency,
        check_errors(facts.metrics),
    ]


_AFTER_LIVENESS = (
    ("ready", "readiness"),
    ("digest", "served seal"),
    ("drift", "server's drift verdict"),
    ("device", "serving device"),
    ("inference", "golden row inference"),
    ("latency", "inference latency"),
    ("errors", "server errors"),
)


# --- health --------------------------------------------------------------------------------


def check_live(reply: http.Reply) -> Check:
    reason = reply.json_object().get("reason", reply.text())
    evidence = f"GET /v2/health/live: {reply.summary()} ({reason})"
    if reply.ok:
        return new_check("server", "live", "liveness", Status.OK, evidence)
    if reply.status == 404:
        fix = "the server has no OIP v2 health route: is this URL a model server at all?"
    else:
        fix = (
            "the server says it is wedged: an orchestrator's liveness probe restarts it; "
            "its logs say which batch hung (--stall-seconds sets the limit)"
        )
    return new_check("server", "live", "liveness", Status.FAIL, evidence, fix)


def check_ready(ready: http.Reply, health: http.Reply) -> Check:
    body = health.json_object()
    state = body.get("state")
    reason = ready.json_object().get("reason") or body.get("reason") or ready.text()
    evidence = f"GET /v2/health/ready: {ready.summary()} ({reason})"
    if state is not None:
        seconds = body.get("seconds_in_state")
        since = f" for {seconds:.1f} s" if isinstance(seconds, int | float) else ""
        evidence += f"; /health: state {state}{since}"
    facts: Facts = {"state": state if isinstance(state, str) else None}
    if ready.ok:
        return new_check("server", "ready", "readiness", Status.OK, evidence, None, facts)
    if state in STARTING_STATES:
        fix = (
            "the server is still starting (fetch, load, verify, warm up): wait, and if it "
            "stays in this state, its /health history (and fetch progress) shows the slow step"
        )
        return new_check("server", "ready", "readiness", Status.WARN, evidence, fix, facts)
    if state == "draining":
        fix = "the server is shutting down (SIGTERM); a new one should take over"
        return new_check("server", "ready", "readiness", Status.WARN, evidence, fix, facts)
    fix = (
        "the server will not take traffic: /health says why (the seal failed verification, "
        "the model cannot load, or its inference probe fails); its logs and /seal have details"
    )
    return new_check("server", "ready", "readiness", Status.FAIL, evidence, fix, facts)


# --- what is served ------------------------------------------------------------------------


def check_digest(reply: http.Reply, seal: SealFacts | None) -> Check:
    title = "served seal"
    manifest = reply.json_object().get("manifest")
    if not reply.ok or not isinstance(manifest, dict):
        return new_check(
            "server", "digest", title, Status.WARN,
            f"GET /seal: {reply.summary()}: not a modelseal server, so what it serves is unknown",
            "serve the model with `modelseal serve SEAL` so that /seal names the seal it serves",
        )  # fmt: skip
    served = str(manifest.get("digest"))
    served_text = f"{manifest.get('name')} {manifest.get('version')} ({served})"
    facts: Facts = {"served_digest": served, "local_digest": seal.seal.digest if seal else None}
    if seal is None:
        return new_check(
            "server", "digest", title, Status.SKIPPED,
            f"serves {served_text}; no local seal given to compare with",
            facts=facts,
        )  # fmt: skip
    local = seal.seal
    local_text = f"{local.name} {local.version} ({local.digest})"
    if served != local.digest:
        return new_check(
            "server", "digest", title, Status.FAIL,
            f"the server serves {served_text}, the local seal is {local_text}",
            "deploy the seal you mean (the image's dev.modelseal.seal.digest label says which it "
            "carries) or run the doctor with the seal the server serves",
            facts,
        )  # fmt: skip
    return new_check(
        "server", "digest", title, Status.OK, f"serves {local_text}, the local seal", None, facts
    )


def check_drift(seal_reply: http.Reply, ready: http.Reply) -> Check:
    title = "server's drift verdict"
    report = seal_reply.json_object().get("verify")
    if not seal_reply.ok:
        return new_check(
            "server", "drift", title, Status.SKIPPED,
            f"GET /seal: {seal_reply.summary()}: no verification report to read",
        )  # fmt: skip
    if not isinstance(report, dict):
        return new_check(
            "server", "drift", title, Status.WARN,
            "the server has not verified the seal yet (no report on /seal)",
            "wait for start-up to finish; if it never does, /health says which step hangs",
        )  # fmt: skip
    verdict = str(report.get("verdict"))
    # Judged from readiness: a drifted server that answers ready takes traffic.
    serving_anyway = verdict != "consistent" and ready.ok
    facts: Facts = {"verdict": verdict, "serving_despite_drift": serving_anyway}
    if verdict == "consistent":
        return new_check(
            "server", "drift", title, Status.OK,
            "the server's golden replay at start-up was consistent with the seal",
            facts=facts,
        )  # fmt: skip
    details = _replay_failures(report)
    evidence = f"the server's golden replay at start-up: {verdict}"
    if details:
        evidence += f" ({details})"
    if serving_anyway:
        evidence += (
            "; it serves anyway (--drift warn): its answers are outside the seal's tolerance"
        )
    fix = (
        "the serving environment does not reproduce the model: compare it with the seal "
        "(`modelseal doctor --container` or `modelseal diff SEAL -` inside it), rebuild the "
        "image from the seal's lock, and serve with --drift fail so a drifted server never "
        "turns ready"
    )
    return new_check("server", "drift", title, Status.FAIL, evidence, fix, facts)


def _replay_failures(report: dict[str, Any]) -> str:
    failure = report.get("failure")
    if isinstance(failure, dict):
        return f"{failure.get('error_type')}: {failure.get('message')}"
    texts = []
    for replay in report.get("golden") or []:
        comparison = replay.get("comparison", {}) if isinstance(replay, dict) else {}
        if comparison.get("passed", True):
            continue
        failed = [c.get("detail", "") for c in comparison.get("checks", []) if not c.get("passed")]
        texts.append(
            f"{comparison.get('name')} at batch {replay.get('batch_size')}: {'; '.join(failed)}"
        )
    return " | ".join(texts[:3])


def check_device(health: http.Reply, seal: SealFacts | None) -> Check:
    title = "serving device"
    body = health.json_object()
    device = body.get("device")
    if not isinstance(device, str):
        return new_check(
            "server", "device", title, Status.SKIPPED,
            f"GET /health: {health.summary()}: the server does not say which device it uses",
        )  # fmt: skip
    gpu = body.get("gpu")
    gpu_name = gpu.get("name") if isinstance(gpu, dict) else None
    evidence = f"serves on {device}" + (f" ({gpu_name})" if gpu_name else "")
    facts: Facts = {"device": device, "gpu": gpu_name}
    if seal is not None and seal.expects_gpu and not device.startswith("cuda"):
        evidence += (
            f"; the seal was validated with {seal.packed_gpus_text()}: the server fell back to "
            "the CPU without an error (the silent CPU fallback), typically tens of times slower"
        )
        fix = f"{GPU_CHECKLIST}; serve with --require-gpu 1 so this stops start-up instead"
        return new_check("server", "device", title, Status.FAIL, evidence, fix, facts)
    return new_check("server", "device", title, Status.OK, evidence, None, facts)


# --- a real inference ----------------------------------------------------------------------


def check_inference(
    url: str, seal: SealFacts | None, latency_budget_s: float
) -> tuple[Check, Check]:
    """Send golden row 0 over OIP v2 and compare the answer under the seal's tolerance."""
    if seal is None:
        skipped = "no local seal given: no golden row to send"
        return (
            new_check("server", "inference", "golden row inference", Status.SKIPPED, skipped),
            new_check("server", "latency", "inference latency", Status.SKIPPED, skipped),
        )
    local = seal.seal
    golden = load_golden(local.golden_path)
    endpoint = f"{url}/v2/models/{local.name}/versions/{local.version}/infer"
    request = {
        "id": "modelseal-doctor",
        "inputs": json_tensors(golden.input_rows(0, 1), local.signature),
    }
    reply = http.post_json(endpoint, request)
    outputs = _infer_outputs(reply)
    if outputs is None:
        evidence = f"POST {endpoint}: {reply.summary()}: {reply.text() or reply.error}"
        fix = (
            "the server cannot answer the model's own golden input: if it serves another model "
            "(404), check served seal; otherwise its logs show the error"
        )
        return (
            new_check("server", "inference", "golden row inference", Status.FAIL, evidence, fix),
            new_check(
                "server", "latency", "inference latency", Status.SKIPPED, "the inference failed"
            ),
        )
    comparisons = [
        compare_output(name, expected[:1], outputs.get(name, np.empty((0,))), parse_policy(text))
        for name, text in local.manifest.tolerance.items()
        for expected in [golden.outputs[name]]
    ]
    return _judge_inference(comparisons), judge_latency(reply.seconds, latency_budget_s)


def _infer_outputs(reply: http.Reply) -> NamedArrays | None:
    outputs = reply.json_object().get("outputs")
    if not reply.ok or not isinstance(outputs, list):
        return None
    try:
        return {
            str(output["name"]): np.asarray(
                output["data"], dtype=DTYPES[output["datatype"]]
            ).reshape(output["shape"])
            for output in outputs
        }
    except (KeyError, TypeError, ValueError):
        return None


def _judge_inference(comparisons: list[OutputComparison]) -> Check:
    title = "golden row inference"
    failed = [c for c in comparisons if not c.passed]
    summary = "; ".join(
        f"{c.name}: {'within' if c.passed else 'OUTSIDE'} {c.policy}"
        + (f" (max abs diff {c.max_abs_diff:.3g})" if c.max_abs_diff is not None else "")
        for c in comparisons
    )
    evidence = f"golden row 0 through OIP v2 infer: {summary}"
    if failed:
        details = "; ".join(check.detail for c in failed for check in c.checks if not check.passed)
        fix = (
            "the served model does not reproduce its golden output: see server.drift and the "
            "deps checks inside the serving environment; `modelseal verify SEAL --url URL` "
            f"replays every golden row ({details})"
        )
        return new_check("server", "inference", title, Status.FAIL, evidence, fix)
    return new_check("server", "inference", title, Status.OK, evidence)


def judge_latency(seconds: float, budget_s: float) -> Check:
    evidence = f"one golden row answered in {seconds * 1000:.1f} ms (budget {budget_s * 1000:g} ms)"
    facts: Facts = {"latency_seconds": round(seconds, 6), "budget_seconds": budget_s}
    if seconds > budget_s:
        fix = (
            "one row should answer in milliseconds: check server.device (a CPU fallback), the "
            "threads and limits checks (CPU throttling, oversubscription), and the queue "
            "(modelseal_queue_depth on /metrics)"
        )
        return new_check(
            "server", "latency", "inference latency", Status.WARN, evidence, fix, facts
        )
    return new_check("server", "latency", "inference latency", Status.OK, evidence, None, facts)


# --- metrics -------------------------------------------------------------------------------


def check_errors(metrics: http.Reply) -> Check:
    title = "server errors"
    if not metrics.ok:
        return new_check(
            "server", "errors", title, Status.SKIPPED, f"GET /metrics: {metrics.summary()}"
        )
    by_status: dict[str, float] = {}
    for labels, value in _samples(metrics, "modelseal_requests_total"):
        status = labels.get("status", "")
        by_status[status] = by_status.get(status, 0.0) + value
    internal = int(sum(v for s, v in by_status.items() if s.startswith("5") and s != "503"))
    refused = int(by_status.get("503", 0))
    total = int(sum(by_status.values()))
    evidence = (
        f"{total} requests since start: {internal} internal errors (5xx other than 503), "
        f"{refused} refused with 503 (not ready, overloaded or draining)"
    )
    facts: Facts = {"requests": total, "internal_errors": internal, "refused_503": refused}
    if internal:
        fix = "the server failed requests with 5xx: its logs (JSON, with the seal digest) say why"
        return new_check("server", "errors", title, Status.WARN, evidence, fix, facts)
    return new_check("server", "errors", title, Status.OK, evidence, None, facts)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _samples(reply: http.Reply, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of metric ``name`` in a Prometheus text exposition."""
    found = []
    for line in reply.body.decode(errors="replace").splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        found.append((dict(_LABEL.findall(match.group(2) or "")), value))
    return found
