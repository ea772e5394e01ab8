"""Fault benchmark: `.venv/bin/python -m bench.faults [SCENARIO ...] [-- options]`.

Scenarios (each module prints its own figures and exits non-zero when a target is missed):

- `kill`: kill -9 at random moments of the supervisor alone or of every process at once while
  clients publish and a peer replicates; acknowledged entries lost, leftover processes, restart
  time (`bench/faults/kill.py`).
- `malformed`: generated malformed frames on /ws/signal, /peerjs and /ws/coordinate while two good
  clients relay through the same daphne; server exceptions, lost relays, closed good sockets,
  p99 answer time (`bench/faults/malformed.py`).
- `flood`: connection and message floods from one address and from many; limits hold,
  /api/status answers within 1 s, memory stays bounded (`bench/faults/flood.py`).

`python -m bench.faults` runs all three with their defaults; `python -m bench.faults kill --help`
shows one scenario's options. Every process is started by the benchmark and stopped by its PID.
"""

from __future__ import annotations

import importlib
import sys

SCENARIOS = ("kill", "malformed", "flood")


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and argv[0] in SCENARIOS:
        module = importlib.import_module(f"bench.faults.{argv[0]}")
        return int(module.main(argv[1:]))
    if argv:
        print(f"unknown scenario {argv[0]!r}: choose from {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    worst = 0
    for name in SCENARIOS:
        print(f"\n=== bench.faults {name} ===", flush=True)
        worst = max(worst, int(importlib.import_module(f"bench.faults.{name}").main([])))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
