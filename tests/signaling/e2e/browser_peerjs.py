"""Browser end-to-end run: the unmodified `peerjs` client in headless Chromium against a station.

Run INSIDE a private network namespace (tests/signaling/test_e2e_peerjs_browser.py does it with
`unshare -n` and a veth pair with a default route): Chromium gathers WebRTC host candidates only on
an interface with a default route, and nothing here may reach the machine's real interfaces.

It starts a station (its own Redis on a unix socket, a migrated SQLite data dir and a daphne on
127.0.0.1), a tiny HTTP server for the test page and `peerjs.min.js`, then Chromium through
Playwright, and runs these scenarios:

- peerjs: two Peer objects on two pages (one id from the station's `GET /peerjs/peerjs/id`, one
  chosen) open a DataConnection through the station and exchange a message both ways; the chosen
  id is refused to a third Peer (`unavailable-id`); connecting to an absent id ends in
  `peer-unavailable`;
- native: two pages use the station's own `meshsite-signal.js` over `/ws/signal` to open an
  RTCPeerConnection data channel and exchange a message both ways.

It prints one JSON object with the results on stdout (exit 0) or a reason on stderr (exit 1).
`--external HOST:PORT` points it at a server that is already running instead (for instance
peerjs-server, to compare).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import socketserver
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>meshsite e2e</title></head>
<body><script src="/peerjs.min.js"></script>
<script>
window.log = [];
window.received = [];
window.openPeer = (id, opts) => new Promise((resolve, reject) => {
  const peer = id ? new Peer(id, opts) : new Peer(opts);
  const timer = setTimeout(() => reject(new Error("no open event in 15 s")), 15000);
  peer.on("open", (pid) => { clearTimeout(timer); window.peer = peer; resolve(pid); });
  peer.on("error", (e) => { clearTimeout(timer); reject(new Error(e.type + ": " + e.message)); });
  peer.on("connection", (conn) => {
    conn.on("data", (data) => { window.received.push(data); conn.send("reply to " + data); });
  });
});
window.peerError = (id, opts) => new Promise((resolve) => {
  const peer = id ? new Peer(id, opts) : new Peer(opts);
  const timer = setTimeout(() => resolve({type: "none"}), 15000);
  peer.on("open", () => { clearTimeout(timer); resolve({type: "opened"}); peer.destroy(); });
  peer.on("error", (e) => { clearTimeout(timer); resolve({type: e.type, message: e.message});
                            peer.destroy(); });
});
window.talk = (target, text) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("DataConnection not done in 30 s")), 30000);
  const conn = window.peer.connect(target, {reliable: true});
  conn.on("open", () => conn.send(text));
  conn.on("data", (data) => { clearTimeout(timer); resolve(data); });
  conn.on("error", (e) => { clearTimeout(timer); reject(new Error("conn: " + e)); });
});
window.unavailable = (target) => new Promise((resolve) => {
  const started = performance.now();
  const timer = setTimeout(() => resolve({type: "none", ms: performance.now() - started}), 30000);
  window.peer.once("error", (e) => {
    clearTimeout(timer);
    resolve({type: e.type, message: e.message, ms: performance.now() - started});
  });
  window.peer.connect(target);
});
</script></body></html>
"""

NATIVE_SCRIPT = """async ({stationUrl, role, peerKey}) => {
  const { SignalingClient } = await import(stationUrl + "/static/signaling/meshsite-signal.js");
  const wsUrl = stationUrl.replace(/^http/, "ws") + "/ws/signal";
  const client = new SignalingClient(wsUrl, { reconnect: false });
  window.signal = client;
  const registered = await client.register({ callsign: "GUEST" });
  window.nativeInbox = [];
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.pc = pc;
  if (role === "callee") {
    window.calleeDone = new Promise((resolve) => {
      pc.ondatachannel = (event) => {
        const ch = event.channel;
        ch.onmessage = (m) => { window.nativeInbox.push(m.data); ch.send("reply to " + m.data); };
        resolve(ch.label);
      };
    });
    client.on("offer", (detail) => client.accept(pc, detail));
  }
  return registered.clientId;
}"""

NATIVE_CALL = """async (target) => {
  const ch = window.pc.createDataChannel("native");
  const reply = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no reply in 30 s")), 30000);
    ch.onmessage = (m) => { clearTimeout(timer); resolve(m.data); };
  });
  ch.onopen = () => ch.send("hello over native signaling");
  await window.signal.call(window.pc, target);
  return await reply;
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_page(peerjs_js: Path) -> tuple[socketserver.TCPServer, int]:
    """The test page and the npm `peerjs.min.js`, from a folder of their own, on 127.0.0.1."""
    root = Path(tempfile.mkdtemp(prefix="meshsite-page-"))
    (root / "index.html").write_text(PAGE)
    (root / "peerjs.min.js").write_bytes(peerjs_js.read_bytes())
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@contextlib.contextmanager
def station():
    """Redis + migrate + daphne in a fresh data dir; yields (host, port)."""
    from meshsite.embedded_redis import EmbeddedRedis, socket_path_for
    from tests.harness import DaphneProcess, migrate, station_env

    data_dir = Path(tempfile.mkdtemp(prefix="meshsite-br-"))
    redis = EmbeddedRedis(data_dir, socket_path_for(data_dir))
    redis.start()
    daphne = None
    try:
        env = station_env(data_dir, REDIS_URL=f"unix://{redis.socket_path}",
                          MESHSITE_LOG_LEVEL="warning")
        migrate(data_dir, env)
        daphne = DaphneProcess(data_dir, env=env).start()
        yield "127.0.0.1", daphne.port
    finally:
        if daphne is not None:
            daphne.stop()
            sys.stderr.write(daphne.output()[-3000:])
        redis.stop()


def run_scenarios(host: str, port: int, page_port: int, *, native: bool) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.chromium import CHROMIUM, CHROMIUM_ARGS

    results: dict = {}
    opts = {"host": host, "port": port, "path": "/peerjs/", "key": "peerjs", "debug": 1,
            "config": {"iceServers": []}}
    page_url = f"http://127.0.0.1:{page_port}/index.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = [browser.new_context().new_page() for _ in range(3)]
            for page in pages:
                page.on("console", lambda msg: sys.stderr.write(f"[console] {msg.text}\n"))
                page.goto(page_url)
            alice, bob, mallory = pages

            started = time.monotonic()
            results["aliceId"] = alice.evaluate("opts => window.openPeer(null, opts)", opts)
            results["bobId"] = bob.evaluate("opts => window.openPeer('bob-e2e', opts)", opts)
            results["openSeconds"] = round(time.monotonic() - started, 3)

            started = time.monotonic()
            results["aliceGot"] = alice.evaluate("t => window.talk(t, 'hello from alice')",
                                                 results["bobId"])
            results["bobGot"] = bob.evaluate("() => window.received")
            results["dataConnectionSeconds"] = round(time.monotonic() - started, 3)

            results["idTaken"] = mallory.evaluate("opts => window.peerError('bob-e2e', opts)",
                                                  opts)
            results["unavailable"] = alice.evaluate("t => window.unavailable(t)",
                                                    "nobody-is-here")

            if native:
                station_url = f"http://{host}:{port}"
                callee_id = bob.evaluate(NATIVE_SCRIPT, {"stationUrl": station_url,
                                                         "role": "callee", "peerKey": ""})
                alice.evaluate(NATIVE_SCRIPT, {"stationUrl": station_url, "role": "caller",
                                               "peerKey": ""})
                results["nativeAliceGot"] = alice.evaluate(NATIVE_CALL, callee_id)
                results["nativeBobGot"] = bob.evaluate("() => window.nativeInbox")
        finally:
            browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peerjs-js", required=True, type=Path,
                        help="path of the npm package's dist/peerjs.min.js")
    parser.add_argument("--external", metavar="HOST:PORT",
                        help="use a running server instead of starting a station")
    parser.add_argument("--no-native", action="store_true",
                        help="skip the meshsite-signal.js scenario (for non-station servers)")
    args = parser.parse_args()
    server, page_port = serve_page(args.peerjs_js)
    try:
        if args.external:
            host, _, port = args.external.rpartition(":")
            results = run_scenarios(host, int(port), page_port, native=not args.no_native)
        else:
            with station() as (host, port):
                results = run_scenarios(host, port, page_port, native=not args.no_native)
    except Exception as exc:
        sys.stderr.write(f"browser scenario failed: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        server.shutdown()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
