"""Benchmarks: `make bench` runs every module here with a `run()` and commits its results as JSON data."""
