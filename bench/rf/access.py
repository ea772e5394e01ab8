"""Channel access benchmark: `python -m bench.rf.access [--seconds 240] [--loss 0.1]`.

Three stations' RF link layers (`mesh.rf_link`, real TNC connections over KISS/TCP) on the
simulated 1200 bit/s channel (`bench.rf.channel`), in real time, each offered more background
traffic than the channel carries (messages of 300 to 2,000 bytes to everyone, as fast as the
budget lets them go, at `--share` each) and identifying every `--id-interval` seconds. Run
twice: with the TNC's default persistence and the configured share ("untuned"), and as meshd
sets them for two other stations heard (`rf_link.persistence_for`, `rf_link.share_for`).

Figures per run: how busy the channel was, transmissions that collided, the longest queue a
TNC held and the longest keying (frames), and each station's longest gap between IDs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time

from bench.rf.channel import SimulatedChannel
from mesh import kiss
from mesh.ax25 import Address, Frame
from mesh.rf_link import RfLink, persistence_for
from mesh.tnc import TncLink, parse_kiss_url

CALLS = ("DL1A-10", "DL2B-10", "DL3C-10")


async def run(*, seconds: float, loss: float, share: float, id_interval: float, tuned: bool,
              seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    with SimulatedChannel(bitrate=1200, loss=loss, seed=seed, lifetime=seconds + 60) as channel:
        links: list[tuple[TncLink, RfLink]] = []
        tasks: list[asyncio.Task] = []
        for call in CALLS:
            address = Address.parse(call)
            holder: dict[str, RfLink] = {}
            tnc = TncLink(parse_kiss_url(f"tcp://127.0.0.1:{channel.port}"),
                          on_frame=lambda raw, h=holder: h["rf"].on_frame(raw))
            rf = holder["rf"] = RfLink(
                send_frame=tnc.send, identity=lambda a=address: a, bitrate=1200, share=share,
                id_interval=id_interval, beacon_body=lambda c=call: f"presence {c}".encode(),
                nack_gap=10.0, ready=lambda t=tnc: t.connected)
            links.append((tnc, rf))
            tasks += [asyncio.create_task(tnc.run()), asyncio.create_task(rf.run())]
        queues: dict[int, int] = {}
        try:
            for tnc, rf in links:
                if not await tnc.wait_connected(10):
                    raise RuntimeError("the simulated channel did not accept a TNC")
                if tuned:
                    rf.channel_shared_with(len(CALLS) - 1)
                    await tnc.set_parameter(kiss.Command.PERSISTENCE,
                                            persistence_for(len(CALLS) - 1))
            start = time.monotonic()

            async def offer(rf: RfLink) -> None:
                while time.monotonic() - start < seconds:
                    if len(rf.background) < 4:
                        rf.send(rng.randbytes(rng.choice([300, 900, 2000])), to=None,
                                kind="sync")
                    await asyncio.sleep(1)

            async def watch() -> None:
                while time.monotonic() - start < seconds:
                    for client in list(channel.clients.values()):
                        queues[client.ident] = max(queues.get(client.ident, 0),
                                                   len(client.queue))
                    await asyncio.sleep(0.5)

            await asyncio.gather(*(offer(rf) for _, rf in links), watch())
        finally:
            for tnc, _ in links:
                await tnc.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        transmissions = channel.snapshot()
    gaps = {}
    for client in sorted({tx.client for tx in transmissions}):
        ids = [end for tx in transmissions if tx.client == client
               for raw, end in zip(tx.frames, tx.frame_ends, strict=True)
               if str(Frame.decode(raw).destination) == "ID"]
        gaps[client] = max((b - a for a, b in itertools.pairwise(ids)), default=0.0)
    return {"busy": sum(tx.air_time for tx in transmissions) / seconds,
            "collided": sum(tx.collided for tx in transmissions),
            "transmissions": len(transmissions), "queue": max(queues.values(), default=0),
            "keying": max((len(tx.frames) for tx in transmissions), default=0),
            "id_gap": max(gaps.values(), default=0.0)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Three stations contending for a simulated "
                                                 "1200 bit/s channel, untuned and tuned.")
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--share", type=float, default=0.5,
                        help="each station's configured air-time share (default 0.5)")
    parser.add_argument("--id-interval", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"three stations, 1200 bit/s, {args.loss:.0%} loss, share {args.share} each, "
          f"IDs every {args.id_interval:g} s, {args.seconds:g} s per run", flush=True)
    print("run       busy  collided  TNC queue  keying  longest ID gap", flush=True)
    for tuned in (False, True):
        figures = asyncio.run(run(seconds=args.seconds, loss=args.loss, share=args.share,
                                  id_interval=args.id_interval, tuned=tuned, seed=args.seed))
        print(f"{'tuned' if tuned else 'untuned':8} {figures['busy']:5.0%}  "
              f"{figures['collided']:3} of {figures['transmissions']:3}  "
              f"{figures['queue']:9}  {figures['keying']:6}  {figures['id_gap']:8.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
