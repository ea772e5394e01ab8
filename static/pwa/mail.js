/**
 * Mail: the mailbox (docs/mailbox.md) in the browser. Registers this browser as a device of the
 * operator whose license it proves (the claim page's certificate reading and signing), keeps
 * its keys and sessions in IndexedDB, sends messages with X3DH and the Double Ratchet
 * (./mail-crypto.js) to every device of a callsign, and reads its queue over /ws/mailbox,
 * acknowledging each envelope once it is stored here.
 *
 * Only in a secure context: WebCrypto exists nowhere else. On plain HTTP to a LAN address the
 * page says why it cannot work and does nothing else (no storage, no mailbox API call).
 */
import { $, el, reconnectDelay, showMessage } from "./app.js";
import { ClaimError, CLAIM_ERRORS, apiMessage, base64ToBytes, loadForge, post, readCertificate, sign } from "./claim.js";
import * as mc from "./mail-crypto.js";

const PREKEYS_PER_UPLOAD = 50;
const PREKEYS_KEPT = 400;          // private one-time prekeys kept here (a bundle taken long ago)
const SEND_ATTEMPTS = 4;           // 409/410 answers refetch bundles, then try again
const SHOWN = 300;                 // messages on the page
const CALLSIGN_RE = /^[A-Z0-9/]{3,32}$/;

/** What each mailbox API error means on this page (the claim's messages cover the rest). */
export const MAIL_ERRORS = {
  ...CLAIM_ERRORS,
  bad_nonce: "The one-time code of this registration expired or was already used. Press \u201cRegister this device\u201d again.",
  bad_proof: "The signature does not match the certificate: the private key is not this certificate's key, so the device was not registered.",
  bad_signature: "The station could not verify this device's signed prekey (XEdDSA): the device was not registered. Reload the page and try again.",
  too_many_devices: "Your callsign has as many devices as this station allows. Remove one in the station's control plane (ask its operator), then register again.",
  too_many_prekeys: "Too many one-time prekeys in one upload.",
  rate_limited: "Too many requests from this device. Wait a minute, then try again.",
  unknown_operator: "This callsign has no mailbox on this station or any home station it knows of: the operator has to register a device first.",
  unknown_device: "That device of the operator no longer exists.",
  too_large: "The message is too large for the mailbox (96 KiB per envelope).",
  no_lan_route: "The recipient's home station can only be reached over a radio hop, and mailbox traffic never goes on the air. Try again when a LAN/IP route exists.",
  no_route: "The recipient's home station cannot be reached from here now.",
  invalid: "The station refused the request as malformed.",
};

const secure = window.isSecureContext && window.crypto && window.crypto.subtle;

// --- storage: IndexedDB "meshsite-mail" ----------------------------------------------------------
// device      "self": callsign, deviceId, registrationId, token, identity {dhKey, signKey: CryptoKey
//             (non-extractable), publicKey}, signedPreKey {keyId, privateKey, publicKey, signature},
//             nextPreKeyId
// prekeys     keyId -> {keyId, privateKey (non-extractable), publicKey}: removed when used
// sessions    "CALL.device" -> Double Ratchet state (ratchet private key a non-extractable CryptoKey;
//             root, chain and skipped message keys as bytes)
// identities  callsign -> {callsign, identityKey, changedAt}
// messages    "in:<server id>" | "out:<uuid>" -> {id, peer, mine, text | error, at, device}

let dbPromise = null;

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const request = indexedDB.open("meshsite-mail", 1);
      request.onupgradeneeded = () => {
        const d = request.result;
        d.createObjectStore("device", { keyPath: "name" });
        d.createObjectStore("prekeys", { keyPath: "keyId" });
        d.createObjectStore("sessions", { keyPath: "address" });
        d.createObjectStore("identities", { keyPath: "callsign" });
        d.createObjectStore("messages", { keyPath: "id" }).createIndex("at", "at");
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return dbPromise;
}

/** Run `fn(stores)` in one transaction over `names`; resolves with the value `fn` returns (an
 * IDBRequest's result once the transaction has committed). `fn` must not await. */
async function tx(names, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(names, mode);
    const stores = Object.fromEntries(names.map((n) => [n, t.objectStore(n)]));
    const out = fn(stores);
    t.oncomplete = () => resolve(out instanceof IDBRequest ? out.result : out);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error("storage transaction aborted"));
  });
}

const get = (name, key) => tx([name], "readonly", (s) => s[name].get(key));
const address = (callsign, deviceId) => `${callsign}.${deviceId}`;

async function sessionsOf(callsign) {
  const rows = await tx(["sessions"], "readonly",
    (s) => s.sessions.getAll(IDBKeyRange.bound(`${callsign}.`, `${callsign}.\uffff`)));
  return rows.filter((row) => row.callsign === callsign);
}

// --- the station's mailbox API --------------------------------------------------------------

let me = null;  // the "self" row once registered

async function mailApi(method, path, json) {
  const init = { method, headers: { Accept: "application/json", Authorization: `Bearer ${me.token}` } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  try {
    const response = await fetch(path, init);
    let data = {};
    try { data = await response.json(); } catch { data = {}; }
    return { ok: response.ok, status: response.status, data };
  } catch {
    return { ok: false, status: 0, data: { error: "unreachable" } };
  }
}

const uploadable = (key) => ({ keyId: key.keyId, publicKey: mc.toBase64(key.publicKey) });

// --- registration ---------------------------------------------------------------------------

async function register(event) {
  event.preventDefault();
  const form = $("#register-form");
  const message = $("#register-message");
  const button = $("#register-button");
  button.disabled = true;
  try {
    const info = await readCertificate({ certFile: form.certificate.files[0],
      keyFile: form.key.files[0], password: form.password.value });
    showMessage(message, `Making this device's keys for ${info.callsign}\u2026`, "info");
    const identity = await mc.generateIdentity();
    const signedPreKey = await mc.generateSignedPreKey(identity, 1);
    const prekeys = await mc.generatePreKeys(1, PREKEYS_PER_UPLOAD);
    const registrationId = 1 + (crypto.getRandomValues(new Uint32Array(1))[0] % 16380);
    const forge = await loadForge();
    const nonce = await post("/api/mailbox/devices/nonce");
    if (!nonce.ok) {
      showMessage(message, apiMessage(nonce.data, nonce.status, MAIL_ERRORS, "the registration"));
      return;
    }
    showMessage(message, `Proving the license of ${info.callsign}\u2026`, "info");
    const signature = await sign(forge, info.key, base64ToBytes(nonce.data.message));
    const result = await post("/api/mailbox/devices", {
      certificate: info.certificate, chain: info.chain, nonce: nonce.data.nonce, signature,
      identityKey: mc.toBase64(identity.publicKey),
      signedPreKey: { keyId: signedPreKey.keyId, publicKey: mc.toBase64(signedPreKey.publicKey),
        signature: mc.toBase64(signedPreKey.signature) },
      registrationId, oneTimePreKeys: prekeys.map(uploadable),
    });
    if (!result.ok) {
      showMessage(message, apiMessage(result.data, result.status, MAIL_ERRORS, "the registration"));
      return;
    }
    const self = { name: "self", callsign: result.data.callsign, deviceId: result.data.deviceId,
      token: result.data.token, registrationId, identity, signedPreKey,
      nextPreKeyId: PREKEYS_PER_UPLOAD + 1, registeredAt: Date.now() };
    // A new identity: sessions and prekeys of an earlier registration are of no use any more.
    await tx(["device", "prekeys", "sessions"], "readwrite", (s) => {
      s.prekeys.clear();
      s.sessions.clear();
      for (const key of prekeys) s.prekeys.put(key);
      s.device.put(self);
    });
    form.reset();
    showMessage(message, "");
    await start(self);
  } catch (err) {
    showMessage(message, err instanceof ClaimError || err instanceof mc.MailCryptoError
      ? err.message : `The device was not registered: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

/** A fresh set of one-time prekeys (the upload replaces the station's). */
async function replenish() {
  const first = me.nextPreKeyId > 2 ** 24 - 1 - PREKEYS_PER_UPLOAD ? 1 : me.nextPreKeyId;
  const prekeys = await mc.generatePreKeys(first, PREKEYS_PER_UPLOAD);
  const result = await mailApi("PUT", "/api/mailbox/keys", { oneTimePreKeys: prekeys.map(uploadable) });
  if (!result.ok) return;
  me = { ...me, nextPreKeyId: first + PREKEYS_PER_UPLOAD };
  const kept = (await tx(["prekeys"], "readonly", (s) => s.prekeys.getAllKeys()))
    .filter((id) => id < first).slice(0, -PREKEYS_KEPT);
  await tx(["device", "prekeys"], "readwrite", (s) => {
    for (const id of kept) s.prekeys.delete(id);
    for (const key of prekeys) s.prekeys.put(key);
    s.device.put(me);
  });
  showPrekeys(result.data.oneTimePreKeyCount);
}

async function checkPrekeys() {
  const result = await mailApi("GET", "/api/mailbox/keys");
  if (!result.ok) return;
  showPrekeys(result.data.oneTimePreKeyCount);
  if (result.data.low) await replenish();
}

function showPrekeys(count) {
  $("#device-prekeys").textContent = String(count);
  $("#device-prekeys").dataset.count = String(count);
}

// --- sending --------------------------------------------------------------------------------

/** Note the identity key of `callsign`; true when it differs from the one noted before. */
function identityNoted(stores, callsign, identityKey, known) {
  const changed = Boolean(known) && !mc.equal(known.identityKey, identityKey);
  if (!known || changed) stores.identities.put({ callsign, identityKey, changedAt: Date.now() });
  return changed;
}

/** Take `callsign`'s bundle (one device, or "*") and start a session with each device.
 * Resolves {made (sessions started), changed (the operator's identity key is not the one
 * noted before: a new registration, or someone else's key), fingerprint (of the key now)}. */
async function sessionsFromBundle(callsign, which) {
  const result = await mailApi("GET", `/api/mailbox/keys/${encodeURIComponent(callsign)}/${which}`);
  if (!result.ok) throw new Error(apiMessage(result.data, result.status, MAIL_ERRORS, "the bundle request"));
  const made = [];
  for (const device of result.data.devices) {
    if (callsign === me.callsign && device.deviceId === me.deviceId) continue;
    const session = await mc.sessionInitiate({ identity: me.identity, registrationId: me.registrationId,
      bundleIdentityKey: result.data.identityKey, device });
    made.push({ ...session, address: address(callsign, device.deviceId), callsign });
  }
  const known = await get("identities", callsign);
  const identityKey = mc.fromBase64(result.data.identityKey);
  const fingerprint = await mc.fingerprint(identityKey);
  return tx(["sessions", "identities"], "readwrite", (s) => {
    for (const session of made) s.sessions.put(session);
    return { made: made.length, fingerprint,
      changed: identityNoted(s, callsign, identityKey, known) };
  });
}

async function send(event) {
  event.preventDefault();
  const form = $("#send-form");
  const message = $("#send-message");
  const button = $("#send-button");
  const to = form.to.value.trim().toUpperCase();
  const text = form.text.value;
  if (!CALLSIGN_RE.test(to)) {
    showMessage(message, "Enter the recipient's callsign (letters, digits and /).");
    return;
  }
  if (!text.trim()) {
    showMessage(message, "Write a message first.");
    return;
  }
  button.disabled = true;
  showMessage(message, `Encrypting for ${to}\u2026`, "info");
  try {
    const plaintext = mc.utf8(JSON.stringify({ text }));
    let identityChanged = false;
    const take = async (which) => {
      const taken = await sessionsFromBundle(to, which);
      if (taken.changed) identityChanged = taken.fingerprint;
      return taken.made;
    };
    for (let attempt = 0; attempt < SEND_ATTEMPTS; attempt += 1) {
      let sessions = await sessionsOf(to);
      if (sessions.length === 0) {
        if (await take("*") === 0) {
          throw new Error(to === me.callsign ? "You have no other device to write to." : `${to} has no device.`);
        }
        sessions = await sessionsOf(to);
      }
      const sealed = [];
      for (const session of sessions) {
        sealed.push({ ...(await mc.encrypt(session, plaintext)), deviceId: session.deviceId,
          registrationId: session.registrationId });
      }
      const result = await mailApi("PUT", `/api/mailbox/messages/${encodeURIComponent(to)}`, {
        messages: sealed.map((s) => ({ deviceId: s.deviceId, registrationId: s.registrationId,
          type: s.type, content: mc.toBase64(s.content) })),
        timestamp: Date.now(),
      });
      if (result.ok) {
        // The sessions move on only now: a refused send leaves them as they were.
        const record = { id: `out:${crypto.randomUUID()}`, peer: to, mine: true, text, at: Date.now(),
          devices: sealed.length, identityChanged: Boolean(identityChanged) };
        await tx(["sessions", "messages"], "readwrite", (s) => {
          for (const item of sealed) s.sessions.put(item.session);
          s.messages.put(record);
        });
        form.text.value = "";
        showMessage(message, result.status === 202
          ? `Accepted for ${to}: their home station is not reachable now, the message waits for the route.`
          : `Sent to ${to} (${sealed.length} device${sealed.length === 1 ? "" : "s"}).${identityChanged
            ? ` ${to}'s identity key changed (a new registration?): its fingerprint is now ${identityChanged}; ask ${to} whether their Mail page shows the same.` : ""}`,
        "success");
        await render();
        return;
      }
      if (result.status === 409 && result.data.error === "mismatched_devices") {
        await tx(["sessions"], "readwrite", (s) => {
          for (const id of result.data.extraDevices || []) s.sessions.delete(address(to, id));
        });
        for (const id of result.data.missingDevices || []) await take(id);
        continue;
      }
      if (result.status === 410 && result.data.error === "stale_devices") {
        for (const id of result.data.staleDevices || []) {
          await tx(["sessions"], "readwrite", (s) => s.sessions.delete(address(to, id)));
          await take(id);
        }
        continue;
      }
      throw new Error(apiMessage(result.data, result.status, MAIL_ERRORS, "the message"));
    }
    throw new Error(`${to}'s devices kept changing while sending: try again.`);
  } catch (err) {
    showMessage(message, err instanceof mc.MailCryptoError ? `Not sent: ${err.message}.` : err.message);
  } finally {
    button.disabled = false;
  }
}

// --- receiving --------------------------------------------------------------------------------

async function openEnvelope(frame) {
  const content = mc.fromBase64(frame.content);
  const where = address(frame.source, frame.sourceDevice);
  const existing = await get("sessions", where);
  if (frame.messageType === mc.WHISPER) {
    if (!existing) throw new mc.MailCryptoError("no session with this device (its first message was lost)");
    return { ...(await mc.decryptWithArchive(existing, content)), usedPreKey: null, identityKey: null };
  }
  if (frame.messageType !== mc.PREKEY) throw new mc.MailCryptoError(`unknown message type ${frame.messageType}`);
  const prekeyMessage = mc.parsePrekeyMessage(content);
  if (existing && mc.startedBy(existing, prekeyMessage.baseKey)) {
    // Another message of a session already started: the sender has not heard back yet.
    return { ...(await mc.decryptWithArchive(existing, prekeyMessage.message)), usedPreKey: null,
      identityKey: prekeyMessage.identityKey };
  }
  if (prekeyMessage.signedPreKeyId !== me.signedPreKey.keyId) {
    throw new mc.MailCryptoError("the message uses a signed prekey this device does not have");
  }
  let oneTimePreKey = null;
  if (prekeyMessage.oneTimePreKeyId) {
    oneTimePreKey = await get("prekeys", prekeyMessage.oneTimePreKeyId);
    if (!oneTimePreKey) throw new mc.MailCryptoError("the message uses a one-time prekey that was used before or never made here");
  }
  const fresh = await mc.sessionRespond({ identity: me.identity, signedPreKey: me.signedPreKey,
    oneTimePreKey, prekeyMessage, deviceId: frame.sourceDevice });
  const opened = await mc.decrypt({ ...fresh, address: where, callsign: frame.source }, prekeyMessage.message);
  return { session: mc.supersede(opened.session, existing), plaintext: opened.plaintext,
    usedPreKey: prekeyMessage.oneTimePreKeyId || null, identityKey: prekeyMessage.identityKey };
}

function plaintextText(bytes) {
  const body = JSON.parse(new TextDecoder().decode(bytes));
  if (!body || typeof body.text !== "string") throw new mc.MailCryptoError("the message has no text");
  return body.text;
}

async function receive(frame) {
  const id = `in:${frame.id}`;
  if (!await get("messages", id)) {
    const record = { id, peer: frame.source, device: frame.sourceDevice, mine: false,
      at: frame.timestamp || Date.now(), receivedAt: Date.now() };
    let opened = null;
    try {
      opened = await openEnvelope(frame);
      record.text = plaintextText(opened.plaintext);
    } catch (err) {
      opened = null;
      record.error = `A message from ${frame.source} could not be read: ${err.message}.`;
    }
    const known = opened && opened.identityKey ? await get("identities", frame.source) : null;
    await tx(["sessions", "prekeys", "identities", "messages"], "readwrite", (s) => {
      if (opened) {
        s.sessions.put({ ...opened.session, address: address(frame.source, frame.sourceDevice),
          callsign: frame.source });
        if (opened.usedPreKey) s.prekeys.delete(opened.usedPreKey);
        if (opened.identityKey && identityNoted(s, frame.source, opened.identityKey, known)) {
          record.identityChanged = true;
        }
      }
      s.messages.put(record);
    });
  }
  // Stored (or stored before): the station may delete it now.
  socketSend({ type: "ack", id: frame.id });
  await render();
}

// --- the socket ---------------------------------------------------------------------------------

let socket = null;
let attempt = 0;
let work = Promise.resolve();  // frames are handled one at a time, in order

function status(text, state) {
  const node = $("#mail-status");
  node.textContent = text;
  document.documentElement.dataset.mailbox = state;
}

function socketSend(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

const STOPS = {
  4000: "This device's mailbox was opened in another tab or window: it reads there now. Reload to read here.",
  4001: "The station removed this device (your callsign registered a new identity key elsewhere). Register this device again.",
  4401: "The station does not know this device any more. Register this device again.",
};

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/mailbox`);
  socket = ws;
  status("Connecting\u2026", "connecting");
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: me.token }));
  ws.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    work = work.then(() => handle(frame)).catch((err) => console.error("mail:", err));
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    if (STOPS[event.code]) {
      status(STOPS[event.code], "stopped");
      if (event.code !== 4000) showRegistration(true);
      return;
    }
    const delay = reconnectDelay(attempt);
    attempt += 1;
    status("The station cannot be reached: reconnecting\u2026", "disconnected");
    setTimeout(connect, delay);
  };
  ws.onerror = () => {};
}

async function handle(frame) {
  if (frame.type === "envelope") {
    await receive(frame);
  } else if (frame.type === "queue_empty") {
    attempt = 0;
    status("Connected: every waiting message is here.", "connected");
  } else if (frame.type === "keys_low") {
    await replenish();
  }
}

// --- the page -----------------------------------------------------------------------------------

async function render() {
  const rows = (await tx(["messages"], "readonly", (s) => s.messages.index("at").getAll())).slice(-SHOWN);
  const list = $("#mail-messages");
  if (rows.length === 0) {
    list.replaceChildren(el("li", { class: "muted", text: "No messages yet." }));
    return;
  }
  list.replaceChildren(...rows.map((m) => el("li", { class: m.mine ? "mine" : "theirs", "data-id": m.id },
    el("span", { class: "who", text: m.mine ? `You \u2192 ${m.peer}` : `${m.peer} (device ${m.device})` }),
    m.identityChanged ? el("span", { class: "tag warn", text: `${m.peer}'s identity key changed` }) : null,
    m.error ? el("span", { class: "text error", text: m.error }) : el("span", { class: "text", text: m.text }),
    el("time", { datetime: new Date(m.at).toISOString(), text: new Date(m.at).toLocaleString() }))));
  list.lastElementChild.scrollIntoView({ block: "nearest" });
}

function showRegistration(visible) {
  $("#mail-register").hidden = !visible;
}

async function start(self) {
  me = self;
  showRegistration(false);
  $("#device-callsign").textContent = me.callsign;
  $("#device-id").textContent = String(me.deviceId);
  $("#device-fingerprint").textContent = await mc.fingerprint(me.identity.publicKey);
  $("#mail-device").hidden = false;
  $("#mail-main").hidden = false;
  document.documentElement.dataset.mailDevice = `${me.callsign}.${me.deviceId}`;
  await render();
  connect();
  await checkPrekeys();
}

async function main() {
  if (!secure) {
    // No WebCrypto here: say why and how to get it, and touch nothing else.
    $("#mail-insecure").hidden = false;
    document.documentElement.dataset.mailbox = "insecure";
    return;
  }
  $("#mail-app").hidden = false;
  $("#register-form").addEventListener("submit", register);
  $("#send-form").addEventListener("submit", send);
  const self = await get("device", "self");
  if (self) await start(self);
  else {
    showRegistration(true);
    document.documentElement.dataset.mailbox = "unregistered";
  }
}

main().catch((err) => {
  console.error("mail:", err);
  status(`The page could not start: ${err.message}`, "failed");
});

