/**
 * Claim: read the operator's license certificate in the browser (node-forge, vendored: it
 * opens TQSL's .p12 files including the legacy RC2-40/3DES ones), show the callsign, sign the
 * station's nonce (WebCrypto where the page is a secure context, else node-forge) and send the
 * certificate and the signature. The private key never leaves this page.
 */
import { $, loadScript, showMessage } from "./app.js";

const FORGE_URL = new URL("../vendor/node-forge-1.3.1/forge.min.js", import.meta.url).href;
const CALLSIGN_OID = "1.3.6.1.4.1.12348.1.1";  // LoTW's callsign subject attribute

/** What each claim API error code means to the person at the form. */
export const CLAIM_ERRORS = {
  malformed: "The station could not read this certificate. Choose the certificate file your license issuer gave you.",
  too_large: "This certificate file is too large to be a license certificate.",
  chain_too_deep: "The certificate chain is longer than a license chain can be.",
  chain_incomplete: "A certificate of the chain is missing: use the .p12 file that includes the issuer's certificates.",
  untrusted_root: "This certificate does not come from an authority this station trusts. The station's operator adds trust roots (for example the ARRL Logbook of the World root) in the control plane.",
  bad_signature: "A certificate of the chain has an invalid signature: this file has been altered or is not a real license certificate.",
  not_a_ca: "An issuer in this chain is not allowed to issue certificates.",
  path_length_exceeded: "The chain is longer than one of its authorities allows.",
  expired: "This certificate has expired. Renew it with your license issuer (TQSL: Renew Callsign Certificate).",
  not_yet_valid: "This certificate is not valid yet: check this computer's date, or wait until its start date.",
  issued_outside_ca_validity: "This certificate was issued when its authority was not valid.",
  blacklisted: "This certificate has been blacklisted on this station or the mesh.",
  bad_callsign: "The certificate carries no usable callsign.",
  callsign_mismatch: "The callsign does not match the certificate.",
  bad_proof: "The signature does not match the certificate: the private key is not this certificate's key.",
  bad_password: "The password does not open this file.",
  bad_key: "The private key does not belong to this certificate.",
  bad_nonce: "The claim took too long and its one-time code expired. Press the button again.",
  already_claimed: "This station already has an owner.",
  rate_limited: "Too many attempts. Wait a minute, then try again.",
  invalid: "The station refused the request as malformed.",
  unreachable: "The station did not answer. Check your connection to it and try again.",
};

export const loadForge = () => loadScript(FORGE_URL, "forge");

/** A problem with the operator's certificate file, said for the person at the form. */
export class ClaimError extends Error {}

const form = $("#claim-form");
const message = $("#claim-message");
let parsed = null;  // {certificate, chain, key, callsign}

async function readBytes(file) {
  let bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes[0] === 0x1f && bytes[1] === 0x8b && "DecompressionStream" in window) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return bytes;
}

const binary = (bytes) => Array.from(bytes, (b) => String.fromCharCode(b)).join("");
const isText = (bytes) => binary(bytes.slice(0, 4096)).includes("-----BEGIN");

function callsignOf(cert) {
  const attr = cert.subject.attributes.find((a) => a.type === CALLSIGN_OID)
    || cert.subject.attributes.find((a) => a.name === "commonName");
  return attr ? String(attr.value).trim().toUpperCase() : "";
}

function sameKey(forge, cert, key) {
  try {
    return cert.publicKey.n.equals(key.n) && cert.publicKey.e.equals(key.e);
  } catch {
    return false;
  }
}

function pickEnd(forge, certs, key) {
  if (key) {
    const matching = certs.find((c) => sameKey(forge, c, key));
    if (matching) return matching;
  }
  const isCa = (c) => {
    const bc = c.getExtension("basicConstraints");
    return bc && bc.cA;
  };
  return certs.find((c) => !isCa(c)) || certs[0];
}

function parsePkcs12(forge, bytes, password) {
  let p12;
  try {
    const asn1 = forge.asn1.fromDer(binary(bytes));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (err) {
    if (/password|MAC/i.test(String(err && err.message))) {
      throw new ClaimError(password
        ? `${CLAIM_ERRORS.bad_password} Check the password of the certificate file.`
        : "This file is protected by a password: enter it under \u201cPassword\u201d.");
    }
    if (/OID|not supported|Unsupported/i.test(String(err && err.message))) {
      throw new ClaimError("This file uses a key type the browser cannot read (only RSA keys, as TQSL makes). Claim at the station's console instead: python manage.py claimstation.");
    }
    throw new ClaimError("This file is not a readable .p12/.pfx certificate file.");
  }
  const bags = (oid) => (p12.getBags({ bagType: oid })[oid] || []);
  const certs = bags(forge.pki.oids.certBag).map((b) => b.cert).filter(Boolean);
  const keys = [...bags(forge.pki.oids.pkcs8ShroudedKeyBag), ...bags(forge.pki.oids.keyBag)]
    .map((b) => b.key).filter(Boolean);
  if (certs.length === 0) throw new ClaimError("This .p12 file holds no certificate.");
  if (keys.length === 0) throw new ClaimError("This .p12 file holds no private key (or one the browser cannot read: only RSA keys are supported here).");
  const key = keys[0];
  const end = pickEnd(forge, certs, key);
  return { end, chain: certs.filter((c) => c !== end), key };
}

function parsePem(forge, text, keyText, password) {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) || [];
  if (blocks.length === 0) throw new ClaimError("No certificate found in this file (expected PEM: -----BEGIN CERTIFICATE-----).");
  let certs;
  try {
    certs = blocks.map((b) => forge.pki.certificateFromPem(b));
  } catch {
    throw new ClaimError("A certificate in this file could not be read (only RSA certificates are supported in the browser).");
  }
  const keySource = keyText || (text.includes("PRIVATE KEY-----") ? text : "");
  if (!keySource) throw new ClaimError("This certificate file has no private key: choose its \"Private key file\" too.");
  let key;
  try {
    key = /ENCRYPTED/.test(keySource)
      ? forge.pki.decryptRsaPrivateKey(keySource, password)
      : forge.pki.privateKeyFromPem(keySource);
  } catch {
    key = null;
  }
  if (!key) throw new ClaimError(`${CLAIM_ERRORS.bad_password} The private key could not be read: check the password, and that it is an RSA key in PEM.`);
  const end = pickEnd(forge, certs, key);
  return { end, chain: certs.filter((c) => c !== end), key };
}

/**
 * Read a license certificate file (.p12/.pfx, or PEM/.tq6 with `keyFile`) in the browser.
 * Resolves with {callsign, certificate (PEM), chain ([PEM]), key (forge), end (forge cert)};
 * throws ClaimError saying what was wrong. The key stays in this page.
 */
export async function readCertificate({ certFile, keyFile, password }) {
  if (!certFile) throw new ClaimError("Choose your certificate file first.");
  const forge = await loadForge();
  const bytes = await readBytes(certFile);
  const keyText = keyFile ? new TextDecoder().decode(await readBytes(keyFile)) : "";
  const result = isText(bytes)
    ? parsePem(forge, new TextDecoder().decode(bytes), keyText, password)
    : parsePkcs12(forge, bytes, password);
  if (!sameKey(forge, result.end, result.key)) throw new ClaimError(CLAIM_ERRORS.bad_key);
  const callsign = callsignOf(result.end);
  if (!callsign) throw new ClaimError(CLAIM_ERRORS.bad_callsign);
  return {
    callsign,
    certificate: forge.pki.certificateToPem(result.end),
    chain: result.chain.map((c) => forge.pki.certificateToPem(c)),
    key: result.key,
    end: result.end,
  };
}

function showIdentity(info) {
  const box = $("#identity");
  if (!info) {
    box.hidden = true;
    return;
  }
  $("#identity-callsign").textContent = info.callsign;
  const cn = info.end.subject.getField("CN");
  const issuer = info.end.issuer.getField("CN");
  const until = info.end.validity.notAfter.toISOString().slice(0, 10);
  $("#identity-detail").textContent = [cn && cn.value, issuer && `issued by ${issuer.value}`, `valid until ${until}`]
    .filter(Boolean).join(" · ");
  box.hidden = false;
}

let pending = null;       // the parse under way: a claim waits for it
let parsedWith = null;    // the password of the last parse

function refresh() {
  pending = parseAndShow();
  return pending;
}

function parse() {
  return readCertificate({ certFile: form.certificate.files[0], keyFile: form.key.files[0],
    password: form.password.value });
}

async function parseAndShow() {
  parsed = null;
  parsedWith = form.password.value;
  showIdentity(null);
  if (!form.certificate.files[0]) {
    showMessage(message, "");
    return;
  }
  try {
    parsed = await parse();
    showIdentity(parsed);
    showMessage(message, "");
  } catch (err) {
    showMessage(message, err instanceof ClaimError ? err.message : `The file could not be read: ${err.message}`);
  }
}

export function base64ToBytes(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes) {
  return btoa(binary(new Uint8Array(bytes)));
}

/** Sign with RSASSA-PKCS1-v1_5 / SHA-256: WebCrypto where it exists (secure contexts), else forge. */
export async function sign(forge, key, messageBytes) {
  if (window.isSecureContext && window.crypto && crypto.subtle) {
    try {
      const pkcs8 = forge.asn1.toDer(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key))).getBytes();
      const cryptoKey = await crypto.subtle.importKey("pkcs8", Uint8Array.from(pkcs8, (c) => c.charCodeAt(0)),
        { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
      const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", cryptoKey, messageBytes);
      document.documentElement.dataset.signedWith = "webcrypto";
      return bytesToBase64(signature);
    } catch (err) {
      console.warn("WebCrypto could not sign, using node-forge:", err);
    }
  }
  const md = forge.md.sha256.create();
  md.update(binary(messageBytes));
  document.documentElement.dataset.signedWith = "forge";
  return forge.util.encode64(key.sign(md));
}

/** The message for an API error: `errors[code]` (else CLAIM_ERRORS), then the station's detail. */
export function apiMessage(data, status, errors = CLAIM_ERRORS, what = "the claim") {
  const code = (data && data.error) || "";
  const known = errors[code] || CLAIM_ERRORS[code];
  const detail = data && data.detail ? ` (${data.detail})` : "";
  if (known) return known + detail;
  return `The station refused ${what}${code ? ` [${code}]` : ` (HTTP ${status})`}${detail}.`;
}

/** POST JSON without a session (the license proof needs none); resolves {ok, status, data}. */
export async function post(path, json) {
  try {
    const response = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    let data = null;
    try { data = await response.json(); } catch { data = {}; }
    return { ok: response.ok, status: response.status, data };
  } catch {
    return { ok: false, status: 0, data: { error: "unreachable" } };
  }
}

async function signIn(username, password) {
  const token = document.cookie.split(";").map((s) => s.trim()).find((s) => s.startsWith("csrftoken="));
  const body = new URLSearchParams({ username, password, next: "/",
    csrfmiddlewaretoken: token ? decodeURIComponent(token.slice(10)) : "" });
  try {
    await fetch("/signin", { method: "POST", body, credentials: "same-origin", redirect: "manual" });
  } catch {
    // The claim stands; the operator can sign in by hand with the credentials shown.
  }
}

async function claim(event) {
  event.preventDefault();
  const button = $("#claim-button");
  button.disabled = true;
  try {
    if (pending) await pending;
    if (!parsed) await refresh();
    if (!parsed) return;
    showMessage(message, `Claiming for ${parsed.callsign}…`, "info");
    const forge = await loadForge();
    const nonce = await post("/api/claim-station/nonce");
    if (!nonce.ok) {
      showMessage(message, apiMessage(nonce.data, nonce.status));
      return;
    }
    const signature = await sign(forge, parsed.key, base64ToBytes(nonce.data.message));
    const result = await post("/api/claim-station", {
      certificate: parsed.certificate, chain: parsed.chain,
      station: { callsign: parsed.callsign }, nonce: nonce.data.nonce, signature,
    });
    if (!result.ok) {
      showMessage(message, apiMessage(result.data, result.status));
      return;
    }
    parsed = null;
    form.reset();
    await signIn(result.data.adminUsername, result.data.adminPassword);
    $("#done-callsign").textContent = result.data.owner;
    $("#done-username").textContent = result.data.adminUsername;
    $("#done-password").textContent = result.data.adminPassword;
    $("#done-token").textContent = result.data.accessToken;
    form.hidden = true;
    const done = $("#claim-done");
    done.hidden = false;
    done.focus();
  } catch (err) {
    showMessage(message, err instanceof ClaimError ? err.message : `The claim failed: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

if (form) {
  form.certificate.addEventListener("change", refresh);
  form.key.addEventListener("change", refresh);
  form.password.addEventListener("change", () => {
    if (form.certificate.files[0] && form.password.value !== parsedWith) refresh();
  });
  form.addEventListener("submit", claim);
}
