"""Serving a sealed model over HTTP: Open Inference Protocol v2 and a simple ``/predict``.

The parts, one concern per module: ``codecs`` (request bodies to named arrays and back),
``batcher`` (adaptive batching with a bounded queue, inference off the event loop),
``health`` (the readiness state machine and the cached inference probe) and ``metrics``
(Prometheus metrics on a private registry).
"""
