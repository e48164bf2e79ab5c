"""Benchmarks of issue 7: ``make bench`` (see bench/README or ``python -m bench --help``)."""
