"""Benchmarks for the gateway (run from the repository root: ``python -m bench.gateway``)."""
