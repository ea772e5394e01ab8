"""Fault benchmarks: kill -9 trials, malformed WebSocket input, connection and message floods."""
