"""Catalog benchmarks: reconciliation bytes and rounds, serving throughput."""
