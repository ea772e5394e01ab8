"""The Mail page in headless Debian Chromium against a real station, as two operators use it.

Run INSIDE a private network namespace with a veth address (tests/pwa/test_mail.py does it
with `unshare -n`): http://127.0.0.1 is a secure context (the page works), http://10.99.0.1 is
not (the page must say why and do nothing). W1ALI and DL1BOB each register a device in their
own browser context with a .p12 read by the page; W1ALI writes while DL1BOB's page is closed
(the envelope waits on the station: its row and the database file are searched for the
plaintext), DL1BOB reads it, answers, W1ALI writes again after the ratchet turned, DL1BOB
reloads (keys and sessions from IndexedDB), then DL1BOB registers a new browser (a new
identity key, the old device goes) and W1ALI's next message finds the new device through the
410 answer. Prints one JSON object of results (exit 0), or the failure on stderr (exit 1).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.pwa.e2e.run import (  # noqa: E402 - after the path set-up for the namespace
    P12_PASSWORD,
    VETH_ADDRESS,
    Pages,
    log,
    p12_write,
    scenario_main,
    wait_text,
)

FIRST = "73 de W1ALI: drinking water at the school gym from 14:00 \u2013 K\u00f6ln \u2713"
REPLY = "DL1BOB here: copied, bringing 40 litres"
SECOND = "W1ALI: thanks, the gym door is on the north side"
THIRD = "W1ALI: are you still on this browser?"
FOURTH = "W1ALI: new browser, new keys \u2013 still readable"
TO_CAROL = "DL1BOB to G4CAR: does your client read the page's format?"
FROM_CAROL = "G4CAR: read you 5 by 9, written from docs/mailbox.md"
TO_BOTH_CAROLS = "DL1BOB to both of G4CAR's devices"
FIFTH = "W1ALI: the station restarted, are you back?"

STATE = """
from signaling.models import MailboxMessage, OneTimePreKey, MailboxDevice
out = {"messages": [], "prekeys": {}, "devices": {}}
for m in MailboxMessage.objects.select_related("device__operator"):
    out["messages"].append({"to": m.device.operator.callsign, "device": m.device.device_id,
                            "source": m.source, "type": m.message_type,
                            "content": bytes(m.content).hex()})
for callsign in ("W1ALI", "DL1BOB"):
    out["prekeys"][callsign] = OneTimePreKey.objects.filter(
        device__operator__callsign=callsign).count()
    out["devices"][callsign] = list(MailboxDevice.objects.filter(
        operator__callsign=callsign).values_list("device_id", "registration_id"))
print(json.dumps(out))
"""

# What the page keeps in IndexedDB: every private key a non-extractable CryptoKey.
STORED_KEYS = """async () => {
    const db = await new Promise((ok, no) => {
        const r = indexedDB.open("meshsite-mail", 1);
        r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
    });
    const all = (name) => new Promise((ok, no) => {
        const r = db.transaction(name).objectStore(name).getAll();
        r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
    });
    const [self] = await all("device");
    const prekeys = await all("prekeys");
    const sessions = await all("sessions");
    const keys = [self.identity.dhKey, self.identity.signKey, self.signedPreKey.privateKey,
                  ...prekeys.map(p => p.privateKey), ...sessions.map(s => s.ratchet.privateKey)];
    return {stores: Array.from(db.objectStoreNames), keys: keys.length,
            allCryptoKeys: keys.every(k => k instanceof CryptoKey),
            extractable: keys.filter(k => k.extractable).length,
            algorithms: Array.from(new Set(keys.map(k => k.algorithm.name))).sort(),
            sessions: sessions.map(s => s.address).sort(), prekeys: prekeys.length};
}"""


# The Double Ratchet's edges, on the page's own module in the page (a secure context).
RATCHET_CHECKS = Path(__file__).with_name("ratchet_checks.js")


def station_state(station) -> dict:
    from tests.mesh.stations import run_django

    return json.loads(run_django(station, STATE).strip().splitlines()[-1])


def database_bytes(station) -> bytes:
    """Every byte of the station's SQLite database (with its WAL), or b"" on PostgreSQL."""
    out = b""
    for name in ("db.sqlite3", "db.sqlite3-wal"):
        path = Path(station.data_dir) / name
        if path.exists():
            out += path.read_bytes()
    return out


def mail_texts(page, selector: str = "#mail-messages li .text") -> list[str]:
    return page.eval_on_selector_all(selector, "ns => ns.map(n => n.textContent)")


def wait_message(page, text: str, timeout: float = 60) -> None:
    try:
        page.wait_for_function(
            "t => Array.from(document.querySelectorAll('#mail-messages li .text'))"
            ".some(n => n.textContent === t)", arg=text, timeout=timeout * 1000)
    except Exception as exc:
        raise AssertionError(f"{page.url}: never showed {text!r}; it shows "
                             f"{mail_texts(page)!r} / {page.text_content('#mail-status')!r}"
                             ) from exc


def register(page, base: str, p12: Path, pages: Pages | None = None, name: str = "") -> dict:
    page.goto(base + "/mail")
    page.wait_for_function("() => document.documentElement.dataset.mailbox === 'unregistered'")
    if pages is not None:
        pages.check(page, f"mail-{name}-unregistered")
        pages.shoot(page, f"mail-{name}-unregistered")
    page.get_by_label("Password").fill(P12_PASSWORD)
    page.get_by_label("Certificate file").set_input_files(str(p12))
    page.get_by_role("button", name="Register this device").click()
    page.wait_for_function("() => document.documentElement.dataset.mailbox === 'connected'",
                           timeout=60000)
    return {"device": page.evaluate("() => document.documentElement.dataset.mailDevice"),
            "signedWith": page.evaluate("() => document.documentElement.dataset.signedWith"),
            "callsign": page.text_content("#device-callsign")}


def send(page, to: str, text: str) -> str:
    page.get_by_label("To (callsign)").fill(to)
    page.get_by_role("textbox", name="Message", exact=True).fill(text)
    page.get_by_role("button", name="Send", exact=True).click()
    wait_text(page, "#send-message", "Sent to", timeout=60)
    return page.text_content("#send-message")


def interop(page, base: str) -> dict:
    """The page and a device of tests/pwa/mail_format.py (the format written again in Python
    from docs/mailbox.md): the page starts the session (X3DH with the Python device's bundle),
    the Python device reads it over /ws/mailbox, acks it and answers in the session."""
    from tests.certificates import pki
    from tests.harness import http_json
    from tests.pwa.mail_format import MailFormatDevice

    carol = MailFormatDevice()
    licence = pki.lotw_user("G4CAR")
    _, nonce = http_json(base + "/api/mailbox/devices/nonce", method="POST")
    status, body = http_json(base + "/api/mailbox/devices", method="POST", body=carol.registration(
        licence.pem, licence.chain_pem, licence.sign, nonce))
    assert status == 201, body
    carol.token, carol.device_id = body["token"], body["deviceId"]
    out: dict = {"sent": send(page, "G4CAR", TO_CAROL)}
    [(kind, text, source_device)] = read_queue(base, carol)
    out["carolRead"], out["envelopeType"] = text, kind
    reply = carol.encrypt("DL1BOB", source_device, FROM_CAROL)
    out["replyStatus"], _ = http_json(
        base + "/api/mailbox/messages/DL1BOB", method="PUT",
        body={"messages": [reply], "timestamp": int(time.time() * 1000)},
        headers={"Authorization": f"Bearer {carol.token}"})
    wait_message(page, FROM_CAROL)
    out["pageSaw"] = mail_texts(page)[-2:]
    out["carolPrekeysLeft"] = len(carol.prekeys)

    # G4CAR adds a device with the same identity key: the page's next message gets a 409
    # (missing device 2), takes that device's bundle and sends to both.
    second = MailFormatDevice(identity_priv=carol.identity_priv)
    _, nonce = http_json(base + "/api/mailbox/devices/nonce", method="POST")
    status, body = http_json(base + "/api/mailbox/devices", method="POST", body=second.registration(
        licence.pem, licence.chain_pem, licence.sign, nonce))
    assert status == 201 and body["deviceId"] == 2, body
    second.token = body["token"]
    out["sentToBoth"] = send(page, "G4CAR", TO_BOTH_CAROLS)
    out["bothRead"] = {name: [kind, text] for name, device in (("first", carol),
                                                                ("second", second))
                       for kind, text, _ in read_queue(base, device)}
    return out


def read_queue(base: str, device) -> list[tuple[int, str, int]]:
    """(message type, text, source device) of every envelope waiting for a
    tests/pwa/mail_format.py device, each acked after it is decrypted."""
    from websockets.sync.client import connect

    out = []
    with connect(base.replace("http", "ws", 1) + "/ws/mailbox", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": device.token}))
        while (frame := json.loads(ws.recv(timeout=30)))["type"] != "queue_empty":
            if frame["type"] == "envelope":
                out.append((frame["messageType"], device.decrypt(frame), frame["sourceDevice"]))
                ws.send(json.dumps({"type": "ack", "id": frame["id"]}))
    return out


def insecure_origin(browser, base: str, pages: Pages) -> dict:
    """The page on plain HTTP to the veth address: the reason, and no mailbox traffic."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    pages.watch(page, "insecure")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    page.goto(base + "/mail")
    page.wait_for_function("() => document.documentElement.dataset.mailbox === 'insecure'")
    # the live view connected too: the page had every chance to call the mailbox
    page.wait_for_function("() => document.documentElement.dataset.live === 'connected'")
    out = {
        "context": page.evaluate("() => ({secure: window.isSecureContext, "
                                 "subtle: !!(window.crypto && window.crypto.subtle)})"),
        "why": page.text_content("#mail-insecure"),
        "appHidden": page.locator("#mail-app").is_hidden(),
        "databases": page.evaluate("async () => (await indexedDB.databases()).map(d => d.name)"),
        "mailboxCalls": [url for url in requests if "/api/mailbox" in url or "/ws/mailbox" in url],
        "requests": len(requests),
    }
    pages.check(page, "mail-insecure")
    pages.shoot(page, "mail-insecure-desktop")
    context.close()
    return out


def run(artifacts: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.certificates import pki
    from tests.chromium import CHROMIUM, CHROMIUM_ARGS
    from tests.harness import StationProcess
    from tests.mesh.stations import provision, wait_for

    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="meshsite-mail-"))
    p12 = {callsign: p12_write(work, callsign, pki.lotw_user(callsign))
           for callsign in ("W1ALI", "DL1BOB")}
    station = StationProcess(host="0.0.0.0", env={  # noqa: S104 - inside the test's namespace
        "MESHSITE_LOG_LEVEL": "warning", "MESHSITE_MAILBOX_REGISTER_RATE": "0"})
    pages = Pages(artifacts)
    try:
        provision(station, roots=[pki.lotw_root()], owner=pki.lotw_user("W1AW"), callsign="W1AW")
        station.start(timeout=120)
        secure = f"http://127.0.0.1:{station.port}"
        insecure = f"http://{VETH_ADDRESS}:{station.port}"
        log(f"station up: {secure} / {insecure}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                results["insecure"] = insecure_origin(browser, insecure, pages)
                results.update(two_operators(browser, secure, station, p12, pages, wait_for))
            finally:
                browser.close()
        results.update(pages.report())
        return results
    finally:
        station.stop()


def two_operators(browser, base: str, station, p12: dict[str, Path], pages: Pages,
                  wait_for) -> dict:
    out: dict = {}
    contexts = []

    def open_page(width: int = 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        pages.watch(page, "secure")
        return context, page

    try:
        _, alice = open_page()
        bob_context, bob = open_page(360)
        started = time.monotonic()
        out["aliceDevice"] = register(alice, base, p12["W1ALI"], pages, "alice")
        out["bobDevice"] = register(bob, base, p12["DL1BOB"])
        out["registerSeconds"] = round(time.monotonic() - started, 2)
        out["prekeysBefore"] = station_state(station)["prekeys"]
        pages.check(alice, "mail-registered")

        # DL1BOB's page is closed: the first message waits on the station.
        bob.close()
        started = time.monotonic()
        out["firstSent"] = send(alice, "DL1BOB", FIRST)
        out["sendSeconds"] = round(time.monotonic() - started, 2)
        waiting = station_state(station)
        out["waiting"] = [{k: v for k, v in m.items() if k != "content"}
                          for m in waiting["messages"]]
        plain = FIRST.encode()
        out["plaintextInRows"] = any(plain.hex() in m["content"] for m in waiting["messages"])
        out["envelopeBytes"] = [len(m["content"]) // 2 for m in waiting["messages"]]
        database = database_bytes(station)
        out["databaseSearched"] = len(database)
        out["plaintextInDatabase"] = plain in database or FIRST[:20].encode() in database
        out["prekeysAfterBundle"] = waiting["prekeys"]

        # DL1BOB opens the page: the waiting envelope, decrypted, then acknowledged.
        bob = bob_context.new_page()
        pages.watch(bob, "secure")
        bob.goto(base + "/mail")
        wait_message(bob, FIRST)
        out["bobSaw"] = mail_texts(bob)
        out["bobSawFrom"] = bob.text_content("#mail-messages li.theirs .who")

        def queue_empty() -> bool:
            return station_state(station)["messages"] == []

        wait_for(queue_empty, 60, "the station's queue is empty after DL1BOB's ack")
        out["queueEmptyAfterRead"] = True

        # The answer (the other ratchet direction), then W1ALI again after the DH step.
        out["replySent"] = send(bob, "W1ALI", REPLY)
        wait_message(alice, REPLY)
        send(alice, "DL1BOB", SECOND)
        wait_message(bob, SECOND)
        out["aliceSaw"] = mail_texts(alice)
        out["bobSawAll"] = mail_texts(bob)
        pages.shoot(alice, "mail-conversation-desktop")
        pages.shoot(bob, "mail-conversation-phone")
        wait_for(queue_empty, 60, "the station's queue is empty after both acks")
        out["prekeysAfterConversation"] = station_state(station)["prekeys"]

        # DL1BOB reloads: history, keys and the session come back from IndexedDB.
        bob.reload()
        bob.wait_for_function("() => document.documentElement.dataset.mailbox === 'connected'")
        out["bobAfterReload"] = mail_texts(bob)
        send(alice, "DL1BOB", THIRD)
        wait_message(bob, THIRD)
        out["storedKeys"] = {"alice": alice.evaluate(STORED_KEYS), "bob": bob.evaluate(STORED_KEYS)}
        pages.check(bob, "mail-conversation")
        out["interop"] = interop(bob, base)
        started = time.monotonic()
        out["ratchet"] = alice.evaluate(RATCHET_CHECKS.read_text())
        out["ratchetChecksSeconds"] = round(time.monotonic() - started, 2)

        # DL1BOB registers a new browser: a new identity key, so the station drops the old
        # device (its page is told) and W1ALI's session names a registration that is gone.
        _, bob_new = open_page()
        out["bobNewDevice"] = register(bob_new, base, p12["DL1BOB"])
        out["bobNewFingerprint"] = bob_new.text_content("#device-fingerprint")
        bob.wait_for_function("() => document.documentElement.dataset.mailbox === 'stopped'",
                              timeout=30000)
        out["oldBobStatus"] = bob.text_content("#mail-status")
        out["devicesAfterNewBrowser"] = station_state(station)["devices"]
        out["fourthSent"] = send(alice, "DL1BOB", FOURTH)
        wait_message(bob_new, FOURTH)
        out["bobNewSaw"] = mail_texts(bob_new)
        out["bobNewTags"] = bob_new.eval_on_selector_all("#mail-messages .tag",
                                                         "ns => ns.map(n => n.textContent)")

        # The station restarts: both pages lose their socket, reconnect with backoff, and the
        # next message arrives over the new one.
        station.stop()
        for page in (alice, bob_new):
            page.wait_for_function(
                "() => document.documentElement.dataset.mailbox === 'disconnected'")
        station.start(timeout=120)
        started = time.monotonic()
        for page in (alice, bob_new):
            page.wait_for_function(
                "() => document.documentElement.dataset.mailbox === 'connected'", timeout=90000)
        out["reconnectSeconds"] = round(time.monotonic() - started, 2)
        send(alice, "DL1BOB", FIFTH)
        wait_message(bob_new, FIFTH)
        out["bobNewAfterRestart"] = mail_texts(bob_new)
        wait_for(queue_empty, 60, "the station's queue is empty at the end")
        final = station_state(station)
        out["prekeysAtEnd"] = final["prekeys"]
        database = database_bytes(station)
        out["anyPlaintextInDatabase"] = [
            text for text in (FIRST, REPLY, SECOND, THIRD, FOURTH, FIFTH, TO_CAROL, FROM_CAROL,
                              TO_BOTH_CAROLS) if text.encode() in database]
    finally:
        for context in contexts:
            context.close()
    return out


def main() -> int:
    return scenario_main(__doc__.splitlines()[0], run, "mail scenario")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshsite.settings")
    sys.exit(main())
