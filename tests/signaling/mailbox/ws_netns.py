"""Run inside a station's network namespace (`ip netns exec NS python ws_netns.py URL TOKEN`):
one /ws/mailbox session. Authenticates, reads every frame up to `queue_empty`, acks the ids
given with --ack (or every envelope with --ack-all), waits --settle seconds for late frames,
and prints {"frames": [...]} (or {"error"}). Needs only `websockets`."""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.client import connect


async def session(url: str, token: str, ack: list[str], ack_all: bool, timeout: float,
                  settle: float) -> dict:
    frames: list[dict] = []
    async with connect(url, open_timeout=timeout, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                frames.append(frame)
                if frame.get("type") == "queue_empty":
                    break
        envelopes = [f["id"] for f in frames if f.get("type") == "envelope"]
        for envelope_id in envelopes if ack_all else ack:
            await ws.send(json.dumps({"type": "ack", "id": envelope_id}))
        try:
            async with asyncio.timeout(settle):
                while True:
                    frames.append(json.loads(await ws.recv()))
        except TimeoutError:
            pass
    return {"frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--ack", action="append", default=[])
    parser.add_argument("--ack-all", action="store_true")
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--settle", type=float, default=0.3)
    args = parser.parse_args()
    try:
        print(json.dumps(asyncio.run(session(args.url, args.token, args.ack, args.ack_all,
                                             args.timeout, args.settle))))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))


if __name__ == "__main__":
    main()
