"""Bytes on the wire and round trips to reconcile two catalogs, against sending the whole one.

Catalogs of 1,000 / 10,000 / 100,000 items share all but D items (D = 0 / 10 / 100 / 1,000,
split evenly between the two sides), with timestamps spread over 30 days like a month of
publishing. "Whole catalog" is what a naive sync would send: every (timestamp, id) once, 40 bytes
each (a real entry with path and signature is several times more).
"""

from __future__ import annotations

import random
import time

from catalog.reconcile import ID_BYTES, Catalog, Item, reconcile_local

SIZES = (1_000, 10_000, 100_000)
DIFFERENCES = (0, 10, 100, 1_000)
BASE = 1_750_000_000_000 << 16


def _items(count: int, rng: random.Random) -> list[Item]:
    spread = 30 * 86_400_000
    return [Item(BASE + (rng.randrange(spread) << 16), rng.randbytes(ID_BYTES))
            for _ in range(count)]


def run(max_message_size: int = 4096, sizes: tuple[int, ...] = SIZES,
        seed: int = 1) -> list[dict]:
    rows = []
    for size in sizes:
        rng = random.Random(seed + size)
        shared = _items(size, rng)
        for differences in DIFFERENCES:
            extra = _items(differences, rng)
            a_items = shared + extra[: differences // 2]
            b_items = shared + extra[differences // 2:]
            a, b = Catalog(a_items), Catalog(b_items)
            started = time.perf_counter()
            result = reconcile_local(a, b, max_message_size=max_message_size)
            elapsed = time.perf_counter() - started
            initiator = result["initiator"]
            assert initiator.need == set(b_items) - set(a_items), "did not converge"
            assert initiator.have == set(a_items) - set(b_items), "did not converge"
            rows.append({
                "entries": size, "differences": differences, "rounds": result["rounds"],
                "bytes": result["bytes_total"], "largest": result["largest_message"],
                "whole": len(b_items) * (8 + ID_BYTES), "seconds": elapsed,
            })
    return rows


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'entries':>8} {'diffs':>6} {'round trips':>11} {'bytes':>9} {'largest msg':>11} "
          f"{'whole catalog':>13} {'ratio':>7} {'cpu s':>6}")
    for row in rows:
        ratio = row["bytes"] / row["whole"]
        print(f"{row['entries']:>8} {row['differences']:>6} {row['rounds']:>11} "
              f"{row['bytes']:>9} {row['largest']:>11} {row['whole']:>13} {ratio:>7.2%} "
              f"{row['seconds']:>6.2f}")


def main() -> None:
    for limit, label in ((4096, "4 KB messages (LAN default)"),
                         (65536, "64 KB messages"),
                         (256, "256-byte messages (one AX.25 frame)")):
        sizes = SIZES if limit != 256 else (1_000, 10_000)
        print_table(run(max_message_size=limit, sizes=sizes), f"Reconciliation, {label}")
    rows = run(sizes=(10_000,))
    target = next(row for row in rows if row["differences"] == 10)
    zero = next(row for row in rows if row["differences"] == 0)
    met = target["bytes"] <= 4096 and target["rounds"] <= 3
    print(f"\ntarget 10k/10 diffs <= 4096 B and <= 3 round trips: {target['bytes']} B, "
          f"{target['rounds']} round trips -> {'met' if met else 'MISSED'}")
    print(f"target 0 diffs in one round trip under 100 B: {zero['bytes']} B, {zero['rounds']} "
          f"round trip -> {'met' if zero['bytes'] < 100 and zero['rounds'] == 1 else 'MISSED'}")
