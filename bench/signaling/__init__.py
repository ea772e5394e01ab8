"""Signaling relay benchmark (`python -m bench.signaling --help`); see docs/benchmarks.md."""
