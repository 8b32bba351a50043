"""Serving a sealed model over HTTP: Open Inference Protocol v2 and a simple ``/predict``.

One concern per module: ``routes`` (the one route table) and ``handlers`` (thin routes),
``app`` (router and lifespan) inside ``middleware`` (errors, request metrics, drain),
``protocol`` (connections: timeouts, limits, refusals, shutdown) under ``runner`` (pre-flight
and the drain); ``repository`` (the models by name), ``core`` (one model: start-up, health,
admission), ``batcher`` and ``batches`` (adaptive batching), ``health`` (the state machine
and the inference probe), ``metrics``, ``codecs`` (request bodies to named arrays and back,
transport-free), ``offload`` (work kept off the event loop), ``openapi``, ``config``.
"""
