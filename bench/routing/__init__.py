"""Routing benchmark: `python -m bench.routing` (see __main__)."""
