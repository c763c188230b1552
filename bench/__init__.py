"""Benchmarks of the whole platform against its ceiling: ``make bench`` (``python -m bench.run``)."""
