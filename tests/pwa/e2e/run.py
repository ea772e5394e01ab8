"""The PWA in headless Debian Chromium against real stations, as operators and clients use it.

Run INSIDE a private network namespace with a veth address and a default route
(tests/pwa/test_browser.py does it with `unshare -n`): the station listens on 0.0.0.0, so the
page is opened both on http://127.0.0.1 (a secure context: service worker, WebCrypto) and on
http://10.99.0.1 (not secure: neither), and Chromium gathers a WebRTC host candidate on v0.

Stations: A (unclaimed at first, claimed through the PWA with a TQSL-like .p12) and B, C (both
claimed at the console by DL1D, each publishing its own version of net.html while apart, then
linked to A). A's connectivity target is a TCP listener this script opens and closes, so the
network mode really changes. Prints one JSON object of results (exit 0), or the failure on
stderr (exit 1). Screenshots of every page (desktop and 360 px) go to --artifacts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VETH_ADDRESS = "10.99.0.1"
AXE = REPO / "tests" / "pwa" / "vendor" / "axe-core-4.14.1" / "axe.min.js"
P12_PASSWORD = "73 de W1AW"
FAST = {"MESHSITE_MESH_GOSSIP_INTERVAL": "3", "MESHSITE_CATALOG_SYNC_INTERVAL": "2",
        "MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
        "MESHSITE_MESH_ROUTE_INTERVAL": "2", "MESHSITE_LIVE_INTERVAL": "0.5",
        "MESHSITE_LOG_LEVEL": "warning"}


def log(text: str) -> None:
    sys.stderr.write(f"[pwa-e2e {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


# --- certificates as TQSL exports them ----------------------------------------------------

def p12_write(folder: Path, name: str, identity) -> Path:
    """`identity` (a tests.certificates.pki.Identity) as `name`.p12 with P12_PASSWORD, key and
    certificates under 3DES as TQSL's current exports."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

    encryption = (PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                  .hmac_hash(hashes.SHA1())  # noqa: S303 - what TQSL's files use
                  .build(P12_PASSWORD.encode()))
    data = pkcs12.serialize_key_and_certificates(name.encode(), identity.key, identity.cert,
                                                 identity.chain, encryption)
    path = folder / f"{name}.p12"
    path.write_bytes(data)
    return path


def p12_files(folder: Path) -> dict[str, Path]:
    """The operator's .p12 (LoTW-shaped chain, certificates under RC2-40 and the key under
    3DES, like TQSL's legacy export) and one (3DES) whose chain ends at a root the station does
    not trust."""
    from tests.certificates import pki

    rogue_key = pki.rsa_key("rogue-root")
    rogue = pki.Identity(pki.make_cert(subject=pki.name("Rogue Licensing Root"), key=rogue_key,
                                       ca=True, key_usage=pki.ca_usage()), rogue_key)
    user_key = pki.rsa_key("rogue-user", 1024)
    forged = pki.make_cert(subject=pki.name("W1AW", "W1AW"), key=user_key,
                           issuer_name=rogue.cert.subject, issuer_key=rogue_key,
                           key_usage=pki.user_usage())

    def write_legacy(name: str, identity: pki.Identity) -> Path:
        # TQSL's classic export: certificates under RC2-40, the key under 3DES (OpenSSL's
        # legacy provider writes it; the cryptography package no longer does).
        pem = folder / f"{name}.pem"
        pem.write_bytes(pki.private_pem(identity.key) + identity.pem.encode()
                        + "".join(identity.chain_pem).encode())
        path = folder / f"{name}.p12"
        subprocess.run(["openssl", "pkcs12", "-export", "-legacy", "-in", str(pem),
                        "-out", str(path), "-passout", f"pass:{P12_PASSWORD}",
                        "-certpbe", "PBE-SHA1-RC2-40", "-keypbe", "PBE-SHA1-3DES"],
                       check=True, capture_output=True, timeout=60)
        return path

    return {"good": write_legacy("W1AW", pki.lotw_user("W1AW")),
            "untrusted": p12_write(folder, "W1AW-untrusted",
                                   pki.Identity(forged, user_key, [rogue.cert]))}


# --- stations -----------------------------------------------------------------------------

class Internet:
    """A TCP listener that stands for "the internet" (the station's connectivity target)."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.sock: socket.socket | None = None

    def up(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        sock = self.sock

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = sock.accept()
                    conn.close()

        threading.Thread(target=accept, daemon=True).start()

    def down(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None


def publish(station, token: str, path: str, body: bytes, priority: int,
            content_type: str = "text/plain; charset=utf-8") -> dict:
    request = urllib.request.Request(
        f"{station.url}/api/content-catalog?path={path}&priority={priority}", data=body,
        method="POST", headers={"Authorization": f"Bearer {token}",
                                "Content-Type": content_type, "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def in_parallel(jobs: list) -> None:
    errors: list[BaseException] = []

    def run(job) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# --- the browser ----------------------------------------------------------------------------

class Pages:
    """Screenshots and axe checks of pages, and the page errors seen on each origin."""

    def __init__(self, artifacts: Path) -> None:
        self.artifacts = artifacts
        self.errors: dict[str, list[str]] = {"secure": [], "insecure": []}
        self.axe: dict[str, list[dict]] = {}
        self.shots: list[str] = []

    def watch(self, page, origin: str) -> None:
        page.on("pageerror", lambda exc: self.errors[origin].append(str(exc)))

    def check(self, page, name: str) -> None:
        # Evaluated through the DevTools protocol: the page's CSP (rightly) refuses a script tag.
        page.evaluate(AXE.read_text() + "\n;0")
        result = page.evaluate("""async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }""")
        self.axe[name] = [v for v in result if v["impact"] in ("serious", "critical")]

    def report(self) -> dict:
        return {"pageErrors": self.errors, "axe": self.axe, "screenshots": self.shots}

    def shoot(self, page, name: str) -> None:
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.shots.append(str(path))


def wait_text(page, selector: str, text: str, timeout: float = 30) -> None:
    try:
        page.wait_for_function(
            "([s, t]) => { const n = document.querySelector(s); "
            "return n && n.textContent.toLowerCase().includes(t.toLowerCase()); }",
            arg=[selector, text], timeout=timeout * 1000)
    except Exception as exc:
        found = page.evaluate("s => { const n = document.querySelector(s); "
                              "return n ? n.textContent : '(no such element)'; }", selector)
        with contextlib.suppress(Exception):
            page.screenshot(path=f"/tmp/pwa-failure-{int(time.time())}.png", full_page=True)
        raise AssertionError(f"{page.url}: {selector} never showed {text!r}; it shows "
                             f"{found!r}") from exc


def run(artifacts: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.certificates import pki
    from tests.chromium import CHROMIUM, CHROMIUM_ARGS
    from tests.harness import StationProcess, http_json, migrate
    from tests.mesh.stations import provision, wait_for

    results: dict = {"artifacts": str(artifacts)}
    work = Path(tempfile.mkdtemp(prefix="meshsite-pwa-"))
    files = p12_files(work)
    internet = Internet()
    a = StationProcess(host="0.0.0.0", env={  # noqa: S104 - inside the test's own namespace
        **FAST, "MESHSITE_CONNECTIVITY_TARGETS": f"127.0.0.1:{internet.port}",
        "MESHSITE_CONNECTIVITY_INTERVAL": "1", "MESHSITE_CONNECTIVITY_FAILURES": "1",
        "MESHSITE_CONNECTIVITY_TIMEOUT": "0.5"})
    b = StationProcess(env=FAST)
    c = StationProcess(env=FAST)
    stations = [a, b, c]
    pages = Pages(artifacts)
    try:
        root = pki.lotw_root()
        dl1d = pki.lotw_user("DL1D")
        tokens: dict[int, str] = {}
        # One migration, copied: three in parallel take minutes on a busy two-core machine.
        migrate(a.data_dir, a.env)
        for station in (b, c):
            shutil.copy(a.data_dir / "db.sqlite3", station.data_dir / "db.sqlite3")
        in_parallel([lambda: provision(a, roots=[root], owner=None)] + [
            lambda s=s: tokens.__setitem__(id(s), provision(s, roots=[root], owner=dl1d,
                                                             callsign="DL1D")) for s in (b, c)])
        log("provisioned")
        in_parallel([lambda s=s: s.start(timeout=120) for s in stations])
        secure = f"http://127.0.0.1:{a.port}"
        insecure = f"http://{VETH_ADDRESS}:{a.port}"
        log(f"stations up: A {secure} / {insecure}, B {b.url}, C {c.url}")

        # B and C: one operator's two stations publish the same path while apart.
        publish(b, tokens[id(b)], "net.html", b"B: net opens on 145.500", 1)
        time.sleep(0.05)  # the HLC timestamps differ anyway; keep the order readable in logs
        publish(c, tokens[id(c)], "net.html", b"C: net opens on 146.520", 1)
        bulletin = publish(b, tokens[id(b)], "bulletin.txt", b"Shelter at the town hall", 4)
        results["bulletinUrl"] = bulletin["url"]

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                results.update(claim_on_insecure_origin(browser, insecure, files, pages))
                results["getStation"] = get_station_on_insecure_origin(browser, insecure,
                                                                       files, pages)
                results.update(secure_origin(browser, secure, a, b, c, internet, tokens, pages,
                                             wait_for, http_json, results))
            finally:
                browser.close()
        results.update(pages.report())
        return results
    finally:
        internet.down()
        for station in stations:
            station.stop()


def claim_on_insecure_origin(browser, base: str, files: dict[str, Path], pages: Pages) -> dict:
    out: dict = {}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    pages.watch(page, "insecure")
    page.goto(base + "/claim")
    out["insecureContext"] = page.evaluate(
        "() => ({secure: window.isSecureContext, sw: 'serviceWorker' in navigator, "
        "subtle: !!(window.crypto && window.crypto.subtle)})")
    pages.check(page, "claim")
    pages.shoot(page, "claim-desktop")

    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Certificate file").set_input_files(str(files["good"]))
    wait_text(page, "#claim-message", "password")
    out["wrongPassword"] = page.text_content("#claim-message")

    page.get_by_label("Password").fill(P12_PASSWORD)
    page.get_by_label("Certificate file").set_input_files(str(files["untrusted"]))
    page.wait_for_selector("#identity:not([hidden])")
    page.get_by_role("button", name="Claim this station").click()
    wait_text(page, "#claim-message", "trust")
    out["untrustedRoot"] = page.text_content("#claim-message")

    page.get_by_label("Certificate file").set_input_files(str(files["good"]))
    page.wait_for_selector("#identity:not([hidden])")
    out["callsignBeforeClaim"] = page.text_content("#identity-callsign")
    page.get_by_role("button", name="Claim this station").click()
    page.wait_for_selector("#claim-done:not([hidden])", timeout=30000)
    out["claimedOwner"] = page.text_content("#done-callsign")
    out["signedWith"] = page.evaluate("() => document.documentElement.dataset.signedWith")
    out["admin"] = {"username": page.text_content("#done-username"),
                    "password": page.text_content("#done-password")}
    page.set_viewport_size({"width": 360, "height": 800})
    pages.shoot(page, "claim-done-phone")
    page.goto(base + "/content")
    out["insecureOperatorSeesPublish"] = page.locator("#publish-form").count() == 1
    # Every page works on the insecure origin too: live updates, no service worker.
    out["insecurePages"] = {}
    for path in ("/", "/stations", "/content", "/talk", "/signin"):
        page.goto(base + path)
        page.wait_for_function("() => document.documentElement.dataset.live === 'connected'"
                               " && document.documentElement.dataset.offline === 'unavailable'")
        out["insecurePages"][path] = page.text_content("[data-live='networkMode']")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base + "/")
    pages.shoot(page, "home-insecure-origin-desktop")
    context.close()
    return out


def index_status(url: str, auth: str | None) -> tuple[int, str]:
    """GET the package index, with `auth` (CALLSIGN:TOKEN) as HTTP basic auth if given."""
    import urllib.error

    headers = {"Accept": "text/html"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=30) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")


def get_station_on_insecure_origin(browser, base: str, files: dict[str, Path],
                                   pages: Pages) -> dict:
    """"Get your own station" on plain HTTP (node-forge signs): a wrong password and an
    untrusted root say so, the .p12 gives a download token, the commands carry it, and the
    package index takes it."""
    out: dict = {}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    pages.watch(page, "insecure")
    page.goto(base + "/")
    page.get_by_role("link", name="Get your own station").first.click()
    page.wait_for_url(base + "/get/")
    page.wait_for_function("() => document.documentElement.dataset.live === 'connected'")
    pages.check(page, "get")
    pages.shoot(page, "get-desktop")
    page.set_viewport_size({"width": 360, "height": 800})
    pages.shoot(page, "get-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Certificate file").set_input_files(str(files["good"]))
    page.get_by_role("button", name="Get a download token").click()
    wait_text(page, "#token-message", "password")
    out["wrongPassword"] = page.text_content("#token-message")

    page.get_by_label("Password").fill(P12_PASSWORD)
    page.get_by_label("Certificate file").set_input_files(str(files["untrusted"]))
    page.get_by_role("button", name="Get a download token").click()
    wait_text(page, "#token-message", "trust")
    out["untrustedRoot"] = page.text_content("#token-message")

    page.get_by_label("Certificate file").set_input_files(str(files["good"]))
    page.get_by_role("button", name="Get a download token").click()
    page.wait_for_selector("#token-done:not([hidden])", timeout=30000)
    out["signedWith"] = page.evaluate("() => document.documentElement.dataset.signedWith")
    out["callsign"] = page.text_content("#token-callsign")
    out["token"] = page.text_content("#token-value")
    out["expires"] = page.text_content("#token-expires")
    out["commands"] = {name: page.text_content(f"#command-{name}")
                       for name in ("linux", "macos", "windows")}
    out["stationUrl"] = base
    pages.shoot(page, "get-token-desktop")
    page.set_viewport_size({"width": 360, "height": 800})
    pages.shoot(page, "get-token-phone")
    context.close()

    # The token works on the package index (HTTP basic auth CALLSIGN:TOKEN).
    index = base + "/simple/"
    out["index"] = {"withToken": index_status(index, f"{out['callsign']}:{out['token']}"),
                    "without": index_status(index, None),
                    "wrongToken": index_status(index, f"{out['callsign']}:not-the-token")}
    return out


def secure_origin(browser, base, a, b, c, internet, tokens, pages, wait_for, http_json,
                  out_admin) -> dict:
    out: dict = {}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    pages.watch(page, "secure")
    page.goto(base + "/")
    page.wait_for_function("() => document.documentElement.dataset.offline === 'ready'",
                           timeout=30000)
    out["secureContext"] = page.evaluate("() => window.isSecureContext")

    # The network mode, as the station's own connectivity check finds it.
    internet.up()
    wait_text(page, "#network-mode", "online")
    out["modeOnline"] = {"text": page.text_content("#network-mode"),
                         "badge": page.get_attribute("#mode-badge", "class")}
    internet.down()
    wait_text(page, "#network-mode", "offline")
    out["modeOffline"] = {"text": page.text_content("#network-mode"),
                          "badge": page.get_attribute("#mode-badge", "class")}
    out["homeState"] = page.text_content("#station-state")
    out["homeOwner"] = page.text_content("#station-heading")

    # The operator signs in (with the account the claim created) and publishes.
    admin = out_admin["admin"]
    page.goto(base + "/signin")
    page.get_by_label("Username (your callsign)").fill(admin["username"])
    page.get_by_label("Password").fill(admin["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    page.goto(base + "/content")
    page.get_by_label("Path").fill("notices/water.txt")
    page.get_by_label("Priority").select_option("1")
    page.get_by_label("Or text").fill("Drinking water at the school gym from 14:00")
    page.get_by_role("button", name="Publish").click()
    wait_text(page, "#publish-message", "Published")
    page.click("#publish-message a")
    page.wait_for_load_state()
    out["published"] = {"url": page.url, "body": page.text_content("body")}

    # B and C (one operator's two stations) link to A: their content and their conflict.
    for station in (b, c):
        status, body = http_json(station.url + "/api/peers", method="POST",
                                 body={"endpoint": base},
                                 headers={"Authorization": f"Bearer {tokens[id(station)]}"})
        assert status == 201, (status, body)

    def conflict_seen() -> bool:
        _, data = http_json(base + "/api/content-catalog?versions=1&conflicts=1")
        return isinstance(data, dict) and len(data.get("entries", [])) == 2

    wait_for(conflict_seen, 240, "A sees both versions of DL1D/net.html")

    def both_versions_served() -> bool:
        # The page previews each version with one fetch when it loads: wait until A serves
        # both (it fetches each body from B or C the first time), then open it.
        _, data = http_json(base + "/api/content-catalog?versions=1&conflicts=1")
        entries = data.get("entries", []) if isinstance(data, dict) else []
        for entry in entries:
            try:
                with urllib.request.urlopen(base + entry["versionUrl"], timeout=30) as answer:
                    if answer.status != 200:
                        return False
            except OSError:
                return False
        return len(entries) == 2

    wait_for(both_versions_served, 240, "A serves both versions of DL1D/net.html")
    page.goto(base + "/content")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.conflict .preview'))"
        ".filter(n => n.textContent.includes('net opens')).length === 2", timeout=30000)
    out["conflict"] = page.eval_on_selector_all(".conflict .preview",
                                                "ns => ns.map(n => n.textContent)")
    out["conflictTitle"] = page.text_content(".conflict h3")

    def bulletin_served() -> bool:
        try:
            with urllib.request.urlopen(base + out_admin["bulletinUrl"], timeout=10) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(bulletin_served, 90, "A serves B's personal bulletin through the mesh")
    page.goto(base + "/content?q=bulletin")
    page.get_by_role("link", name="bulletin.txt").click()
    page.wait_for_load_state()
    out["peerContent"] = page.text_content("body")

    # Talk: two clients of the station over a WebRTC data channel.
    out["talk"] = talk(browser, base, pages)

    # The admin dashboard's mesh map with the three stations.
    def map_complete() -> bool:
        page.goto(base + "/admin/")
        return (page.locator(".mesh-map g.station").count() == 3
                and page.locator(".mesh-map line.link-active").count() == 2)

    wait_for(map_complete, 90, "the admin mesh map shows A linked to B and C")
    out["adminMap"] = {
        "stations": page.eval_on_selector_all(".mesh-map g.station",
                                              "ns => ns.map(n => n.dataset.callsign)"),
        "links": page.locator(".mesh-map line.link").count(),
        "title": page.title()}

    # A station's QR code, from a photo (jsQR: headless Chromium has no BarcodeDetector).
    import segno
    from cryptography.exceptions import InvalidSignature

    qr_png = Path(tempfile.mkdtemp(prefix="meshsite-qr-")) / "station-qr.png"
    segno.make("http://10.99.0.7:8080/").save(str(qr_png), scale=8, border=4)
    page.goto(base + "/stations")
    page.get_by_label("Photo of a QR code").set_input_files(str(qr_png))
    wait_text(page, "#scan-message", "Station found")
    out["qrScan"] = {"message": page.text_content("#scan-message"),
                     "endpoint": page.input_value("#peer-endpoint")}

    # WebCrypto signs where the page is a secure context, and the signature verifies.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from tests.certificates import pki

    key = pki.rsa_key("webcrypto-check", 2048)
    message = b"meshsite-station-delegation-v1\nstation:abc\nnonce:xyz\n"
    signed = page.evaluate("""async ([pem, b64]) => {
        const claim = await import("/static/pwa/claim.js");
        const forge = await claim.loadForge();
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const signature = await claim.sign(forge, forge.pki.privateKeyFromPem(pem), bytes);
        return {signature, via: document.documentElement.dataset.signedWith};
    }""", [pki.private_pem(key).decode(), base64.b64encode(message).decode()])
    try:
        key.public_key().verify(base64.b64decode(signed["signature"]), message,
                                padding.PKCS1v15(), hashes.SHA256())
        signed["verified"] = True
    except InvalidSignature:
        signed["verified"] = False
    out["webCryptoSignature"] = {"via": signed["via"], "verified": signed["verified"]}

    # Every page: axe, and screenshots at desktop and phone width.
    for name, path in [("home", "/"), ("stations", "/stations"), ("content", "/content"),
                       ("talk", "/talk"), ("signin", "/signin"), ("claim-claimed", "/claim"),
                       ("admin", "/admin/"), ("peer-list-admin", "/admin/mesh/peer/")]:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(base + path)
        if not path.startswith("/admin"):
            page.wait_for_function("() => document.documentElement.dataset.live === 'connected'")
            pages.check(page, name)
        pages.shoot(page, f"{name}-desktop")
        page.set_viewport_size({"width": 360, "height": 800})
        pages.shoot(page, f"{name}-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The station stops: pages viewed before still open, from the service worker.
    page.goto(base + "/content")
    page.goto(out["published"]["url"])
    a.stop()
    page.goto(base + "/content")
    out["offlineContent"] = {"h1": page.text_content("h1"),
                             "lists": "notices/water.txt" in page.content()}
    page.wait_for_selector("#connection:not([hidden])")
    out["offlineBanner"] = page.text_content("#connection")
    pages.shoot(page, "content-offline-desktop")
    page.goto(out["published"]["url"])
    out["offlinePublished"] = page.text_content("body")
    context.close()
    return out


def talk(browser, base: str, pages: Pages) -> dict:
    out: dict = {}
    alice_context = browser.new_context(viewport={"width": 1280, "height": 900})
    bob_context = browser.new_context(viewport={"width": 360, "height": 800})
    alice, bob = alice_context.new_page(), bob_context.new_page()
    for page, name in ((alice, "ALICE"), (bob, "BOB")):
        pages.watch(page, "secure")
        page.goto(base + "/talk")
        page.get_by_label("Your name or callsign").fill(name)
        page.get_by_role("button", name="Join").click()
        wait_text(page, "#talk-status", "Joined")
    alice.locator("#people button", has_text="BOB").click()
    alice.wait_for_selector("#message-text:enabled", timeout=30000)
    alice.get_by_label("Message").fill("hello from alice")
    alice.get_by_role("button", name="Send").click()
    bob.wait_for_selector("#people button:has-text('ALICE') .badge", timeout=30000)
    out["bobUnread"] = bob.text_content("#people button:has-text('ALICE') .badge")
    bob.locator("#people button", has_text="ALICE").click()
    wait_text(bob, "#messages", "hello from alice")
    bob.get_by_label("Message").fill("hello alice, bob here")
    bob.get_by_role("button", name="Send").click()
    wait_text(alice, "#messages", "hello alice, bob here")
    out["aliceSaw"] = alice.text_content("#messages")
    out["bobSaw"] = bob.text_content("#messages")
    out["bobUnreadAfter"] = bob.locator("#people button:has-text('ALICE') .badge").count()
    pages.shoot(alice, "talk-conversation-desktop")
    pages.shoot(bob, "talk-conversation-phone")
    # The history stays in the browser: Alice comes back and finds the conversation.
    alice.reload()
    alice.get_by_label("Your name or callsign").fill("ALICE")
    alice.get_by_role("button", name="Join").click()
    alice.locator("#people button", has_text="BOB").click()
    wait_text(alice, "#messages", "hello alice, bob here")
    out["aliceHistoryAfterReload"] = alice.text_content("#messages")
    alice_context.close()
    bob_context.close()
    return out


def scenario_main(description: str, scenario, what: str) -> int:
    """A browser scenario's command line: `--artifacts DIR`, then `scenario(DIR)`; prints its
    results as one JSON line (exit 0), or the failure on stderr (exit 1)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--artifacts", type=Path, required=True)
    args = parser.parse_args()
    args.artifacts.mkdir(parents=True, exist_ok=True)
    try:
        results = scenario(args.artifacts)
    except Exception as exc:
        import traceback

        sys.stderr.write(f"{what} failed: {type(exc).__name__}: {exc}\n")
        traceback.print_exc()
        return 1
    print(json.dumps(results, default=str))
    return 0


def main() -> int:
    return scenario_main(__doc__.splitlines()[0], run, "browser scenario")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshsite.settings")
    sys.exit(main())
