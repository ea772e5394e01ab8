"""What a test does from inside a station's network namespace, where the test process has no
route: run as `ip netns exec NS python netns_client.py ...` by `tests.mesh.topology` (stdlib
only). Prints one JSON object on stdout.

    request URL [--method M] [--header "Name: value"]... [--timeout S]   body on stdin
        {"status", "headers": [[name, value], ...], "body": base64} or {"error"}
        (redirects are not followed: the test sees the 3xx)
    connect HOST PORT [--timeout S]
        {"connected": true} or {"connected": false, "error"}
    echo HOST [--count N] [--timeout S]
        {"rtt_ms": [ms or null per echo request]}  (ICMP echo on a raw socket: needs root;
        Debian's minimal images have no `ping`)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def request(args: argparse.Namespace) -> dict:
    body = sys.stdin.buffer.read()
    req = urllib.request.Request(args.url, data=body if body else None, method=args.method)
    for header in args.header:
        name, _, value = header.partition(":")
        req.add_header(name.strip(), value.strip())
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=args.timeout) as response:
            status, headers, raw = response.status, response.headers.items(), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers.items(), exc.read()
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"status": status, "headers": [list(pair) for pair in headers],
            "body": base64.b64encode(raw).decode()}


def connect(args: argparse.Namespace) -> dict:
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout):
            return {"connected": True}
    except OSError as exc:
        return {"connected": False, "error": f"{type(exc).__name__}: {exc}"}


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo(args: argparse.Namespace) -> dict:
    ident = os.getpid() & 0xFFFF
    rtts: list[float | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        for seq in range(1, args.count + 1):
            payload = b"meshsite-topology".ljust(56, b".")
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident,
                                 seq) + payload
            sent, rtt = time.monotonic(), None
            try:
                sock.sendto(packet, (args.host, 0))
            except OSError:  # no route (a cut link): that request is lost
                rtts.append(None)
                continue
            while (left := args.timeout - (time.monotonic() - sent)) > 0:
                sock.settimeout(left)
                try:
                    data = sock.recv(2048)
                except TimeoutError:
                    break
                offset = (data[0] & 0x0F) * 4  # past the IP header
                kind, _, _, r_ident, r_seq = struct.unpack("!BBHHH", data[offset:offset + 8])
                if kind == 0 and (r_ident, r_seq) == (ident, seq):
                    rtt = (time.monotonic() - sent) * 1000
                    break
            rtts.append(rtt)
    return {"rtt_ms": rtts}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    req = sub.add_parser("request")
    req.add_argument("url")
    req.add_argument("--method", default="GET")
    req.add_argument("--header", action="append", default=[])
    req.add_argument("--timeout", type=float, default=10)
    con = sub.add_parser("connect")
    con.add_argument("host")
    con.add_argument("port", type=int)
    con.add_argument("--timeout", type=float, default=3)
    ech = sub.add_parser("echo")
    ech.add_argument("host")
    ech.add_argument("--count", type=int, default=3)
    ech.add_argument("--timeout", type=float, default=2)
    args = parser.parse_args()
    action = {"request": request, "connect": connect, "echo": echo}[args.action]
    print(json.dumps(action(args)))


if __name__ == "__main__":
    main()
