"""Pieces of the serving benchmark (``benchmarks/bench_serving.py``)."""
