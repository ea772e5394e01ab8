"""Point-to-point cables between network namespaces, with delay, loss and a rate per direction:
netem done in user space, for kernels built without `sch_netem` (this machine's has no netem,
no fq_codel, no prio; `tc qdisc add ... netem` answers "Specified qdisc kind is unknown").

Run as a script by `tests.mesh.topology` (stdlib only, as root):

    python wire.py '[["ns-a", "to1", "ns-b", "to0"], ...]'

For each cable it opens a TAP device in each of the two namespaces (named as given) and
copies Ethernet frames between them. Each frame that leaves one end is dropped with the
cable's loss probability, else queued behind the frames before it at the cable's rate and
delivered `delay` later at the other end, like `netem delay D loss L rate R` on each end of a
veth pair. A TAP end that is down (`ip link set ... down`) neither sends nor takes frames, so
taking both ends down cuts the cable.

On stdin it takes one JSON object a line, `{"cable": k, "delay_ms": d, "loss_pct": l,
"rate_bps": r}` (r null: no limit), applies it to both directions of cable k and answers `ok`
on stdout; it prints `ready` once every TAP exists. It exits when stdin closes (its parent is
gone) or on SIGTERM; its TAP devices go with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
QUEUE_LIMIT = 1000  # frames waiting in one direction, as netem's default `limit`


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def open_tap(namespace: str, name: str) -> int:
    """A TAP device called `name` inside `namespace`; the descriptor works from anywhere."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        _setns(f"/run/netns/{namespace}")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        os.set_blocking(fd, False)
        return fd
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.setns(home, CLONE_NEWNET)
        os.close(home)


@dataclass
class Direction:
    """One way along a cable: frames read from `source` are written to `sink`."""

    source: int
    sink: int
    delay: float = 0.0
    loss: float = 0.0
    rate_bps: float | None = None
    busy_until: float = 0.0  # when the last queued frame has left at the rate
    queued: deque = field(default_factory=deque)

    def send(self, frame: bytes, now: float, timers: list, order: int) -> None:
        if self.loss and random.random() < self.loss:
            return
        if len(self.queued) >= QUEUE_LIMIT:
            return
        leaves = now
        if self.rate_bps:
            leaves = max(now, self.busy_until) + len(frame) * 8 / self.rate_bps
            self.busy_until = leaves
        self.queued.append(frame)
        heapq.heappush(timers, (leaves + self.delay, order, self))

    def deliver(self) -> None:
        frame = self.queued.popleft()
        with contextlib.suppress(OSError):  # that end is down: lost, as on a pulled cable
            os.write(self.sink, frame)


def run(cables: list[list[str]]) -> None:
    directions: dict[int, Direction] = {}  # by source descriptor
    per_cable: list[tuple[Direction, Direction]] = []
    for ns_a, dev_a, ns_b, dev_b in cables:
        a, b = open_tap(ns_a, dev_a), open_tap(ns_b, dev_b)
        forward, back = Direction(a, b), Direction(b, a)
        directions[a], directions[b] = forward, back
        per_cable.append((forward, back))
    print("ready", flush=True)

    timers: list = []
    order = 0
    control, pending = sys.stdin.fileno(), b""
    watched = [control, *directions]
    while True:
        timeout = max(0.0, timers[0][0] - time.monotonic()) if timers else None
        readable, _, _ = select.select(watched, [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            if fd == control:
                chunk = os.read(control, 4096)
                if not chunk:
                    return
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    command = json.loads(line)
                    for direction in per_cable[command["cable"]]:
                        direction.delay = command["delay_ms"] / 1000
                        direction.loss = command["loss_pct"] / 100
                        direction.rate_bps = command["rate_bps"]
                    print("ok", flush=True)
                continue
            direction = directions[fd]
            while True:
                try:
                    frame = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    break
                order += 1
                direction.send(frame, now, timers, order)
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, direction = heapq.heappop(timers)
            direction.deliver()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run(json.loads(sys.argv[1]))
