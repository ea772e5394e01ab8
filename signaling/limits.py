"""Per-connection limits of the signaling relay (no Django imports).

A token bucket per client bounds its message rate; a warning counter turns repeated abuse into a
1008 close. Both are plain objects touched only from the connection's own task, so they need no
locks.
"""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` spends one or answers False."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


def frame_too_large(text: str | bytes, limit: int) -> bool:
    """True when a frame is over `limit` bytes (UTF-8 for text; encoded only when it could be)."""
    if limit <= 0:
        return False
    size = len(text)
    if size > limit:
        return True
    if isinstance(text, str) and size * 4 > limit:
        return len(text.encode("utf-8", "surrogatepass")) > limit
    return False
