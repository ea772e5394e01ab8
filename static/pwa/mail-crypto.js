/**
 * The mailbox's end-to-end encryption on WebCrypto (docs/mailbox.md, "The Mail page's message
 * format"): Signal's key encoding, identity keys that sign XEdDSA with an Ed25519 key, X3DH,
 * the Double Ratchet, and the page's own binary message format. No DOM and no storage here:
 * sessions are plain objects (bytes and CryptoKeys) that the caller keeps in IndexedDB; every
 * function that changes a session returns a new object and leaves the old one as it was, so a
 * caller keeps the old state when a send or a decryption fails.
 *
 * Specifications: Perrin & Marlinspike, "The X3DH Key Agreement Protocol" (2016), "The Double
 * Ratchet Algorithm" (2016), Perrin, "The XEdDSA and VXEdDSA Signature Schemes" (2016).
 */

const subtle = globalThis.crypto.subtle;

export const VERSION = 1;
export const WHISPER = 1;         // the envelope type of an ordinary message (Signal's numbering)
export const PREKEY = 3;          // ... and of a message that starts a session
export const MAX_SKIP = 1000;     // message keys skipped in one chain, at most
export const MAX_SKIPPED = 2000;  // skipped message keys kept per session (oldest go first)
export const ARCHIVED = 4;        // earlier sessions with the same device kept (see supersede)
const INFO_X3DH = "MeshsiteMailboxX3DH";
const INFO_RATCHET = "MeshsiteMailboxRatchet";
const INFO_MESSAGE = "MeshsiteMailboxMessageKeys";
const KEY_TYPE = 0x05;
const HEADER_BYTES = 1 + 33 + 4 + 4;
const PREKEY_HEADER_BYTES = 1 + 4 + 4 + 4 + 33 + 33;
// PKCS#8 for an X25519 private key (RFC 8410): this prefix, then the 32 private bytes.
const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03,
  0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

/** A message the page cannot decrypt or a key it cannot use; `message` says why. */
export class MailCryptoError extends Error {}

// --- bytes ------------------------------------------------------------------------------------

const encoder = new TextEncoder();
export const utf8 = (text) => encoder.encode(text);

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function toBase64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

/** Standard or URL-safe base64, padded or not. */
export function fromBase64(text) {
  const standard = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(standard + "=".repeat((4 - (standard.length % 4)) % 4)),
    (c) => c.charCodeAt(0));
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function uint32(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

const readUint32 = (bytes, offset) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(offset);

/** Signal's encoding of an X25519 public key: 0x05, then the 32 bytes. */
export const encodeKey = (raw) => concat([KEY_TYPE], raw);

export function decodeKey(encoded, what = "a public key") {
  if (!encoded || encoded.length !== 33 || encoded[0] !== KEY_TYPE) {
    throw new MailCryptoError(`${what} is not an X25519 key in Signal's encoding (0x05 + 32 bytes)`);
  }
  return encoded.slice(1);
}

// --- the field of Curve25519 (only to map between its Edwards and Montgomery forms) -----------

const P = 2n ** 255n - 19n;
const mod = (a) => ((a % P) + P) % P;

function power(base, exponent) {
  let result = 1n;
  let b = mod(base);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

const inverse = (a) => power(a, P - 2n);
const littleEndian = (bytes) => bytes.reduceRight((n, b) => (n << 8n) | BigInt(b), 0n);

function toLittleEndian(value) {
  const out = new Uint8Array(32);
  let v = value;
  for (let i = 0; i < 32; i += 1) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The Montgomery u of a compressed Edwards25519 point: u = (1 + y) / (1 - y). */
export function edwardsToMontgomery(point) {
  const y = littleEndian(point) & ((1n << 255n) - 1n);
  return toLittleEndian(mod((1n + y) * inverse(mod(1n - y))));
}

/** The compressed Edwards point of Montgomery u with `sign`: y = (u - 1) / (u + 1); null when
 * u is not canonical or has no Edwards image (XEdDSA's verification rejects those). */
export function montgomeryToEdwards(u, sign) {
  const value = littleEndian(u);
  if (value >= P || mod(value + 1n) === 0n) return null;
  const y = mod((value - 1n) * inverse(value + 1n));
  return toLittleEndian(y | (BigInt(sign & 1) << 255n));
}

// --- primitives -------------------------------------------------------------------------------

async function hkdf(ikm, salt, info, bytes) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info: utf8(info) }, key, bytes * 8));
}


const publicKey = (raw) => subtle.importKey("raw", raw, { name: "X25519" }, true, []);

/** X25519 of our private CryptoKey and their raw 32-byte public key. */
export async function dh(privateKey, theirPublic) {
  try {
    return new Uint8Array(await subtle.deriveBits(
      { name: "X25519", public: await publicKey(theirPublic) }, privateKey, 256));
  } catch (err) {
    throw new MailCryptoError(`a key agreement failed (a bad public key?): ${err.message}`);
  }
}

/** A fresh X25519 key pair: the private key non-extractable, the public one as raw bytes. */
export async function generateKeyPair() {
  const pair = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  return { privateKey: pair.privateKey,
    publicKey: new Uint8Array(await subtle.exportKey("raw", pair.publicKey)) };
}

// --- identity keys and XEdDSA -------------------------------------------------------------------

/**
 * An identity key that is both an X25519 key (for X3DH) and an XEdDSA signer, from WebCrypto's
 * Ed25519 with no curve code here. The Ed25519 private scalar a is the clamped first half of
 * SHA-512(seed); X25519 clamps its private bytes the same way, so the X25519 key made from
 * those bytes has the same scalar and its public u is the Montgomery form of Ed25519's A. An
 * XEdDSA verifier maps u back to the Edwards point with sign bit 0 and checks the plain Ed25519
 * equation (h = SHA-512(R || A || M)): so a key whose A has sign bit 0 (half of them; others
 * are drawn again) signs XEdDSA with ordinary Ed25519 signatures.
 *
 * Resolves {dhKey, signKey, publicKey}: two non-extractable CryptoKeys and the 33-byte public
 * key. Throws if WebCrypto's X25519 public key is not the computed u (then nothing is usable).
 */
export async function generateIdentity() {
  for (let attempt = 0; attempt < 64; attempt += 1) {
    const pair = await subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    const jwk = await subtle.exportKey("jwk", pair.privateKey);
    const edwards = fromBase64(jwk.x);
    if (edwards[31] & 0x80) continue;  // sign bit 1: XEdDSA verifiers would take -A
    const seed = fromBase64(jwk.d);
    const digest = new Uint8Array(await subtle.digest("SHA-512", seed));
    const pkcs8 = concat(PKCS8_X25519, digest.slice(0, 32));
    const u = edwardsToMontgomery(edwards);
    const probe = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, ["deriveBits"]);
    const derived = fromBase64((await subtle.exportKey("jwk", probe)).x);
    if (!equal(derived, u)) {
      throw new MailCryptoError("this browser's X25519 key does not match the Ed25519 key it was made from");
    }
    const dhKey = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
    const signKey = await subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", d: jwk.d, x: jwk.x },
      { name: "Ed25519" }, false, ["sign"]);
    digest.fill(0);
    pkcs8.fill(0);
    seed.fill(0);
    return { dhKey, signKey, publicKey: encodeKey(u) };
  }
  throw new MailCryptoError("no identity key with sign bit 0 in 64 tries (this does not happen)");
}

/** An XEdDSA signature (64 bytes) of `message` by an identity from generateIdentity. */
export async function xeddsaSign(identity, message) {
  return new Uint8Array(await subtle.sign({ name: "Ed25519" }, identity.signKey, message));
}

/** Whether `signature` is an XEdDSA signature of `message` by the X25519 key `identityKey`
 * (33 bytes). The Edwards sign bit comes from the signature's top bit, as libsignal and the
 * station read it (0 from the spec's signers and from this page). */
export async function xeddsaVerify(identityKey, message, signature) {
  if (!signature || signature.length !== 64) return false;
  const u = decodeKey(identityKey, "the identity key");
  const sig = signature.slice();
  const sign = sig[63] >> 7;
  sig[63] &= 0x7f;
  if (sig[63] & 0xe0) return false;
  const edwards = montgomeryToEdwards(u, sign);
  if (!edwards) return false;
  try {
    const key = await subtle.importKey("raw", edwards, { name: "Ed25519" }, false, ["verify"]);
    return await subtle.verify({ name: "Ed25519" }, key, sig, message);
  } catch {
    return false;
  }
}

/** A signed prekey {keyId, privateKey, publicKey (33), signature} signed by `identity`. */
export async function generateSignedPreKey(identity, keyId) {
  const pair = await generateKeyPair();
  const encoded = encodeKey(pair.publicKey);
  return { keyId, privateKey: pair.privateKey, publicKey: encoded,
    signature: await xeddsaSign(identity, encoded) };
}

/** One-time prekeys {keyId, privateKey, publicKey (33)} with ids firstId, firstId + 1, ... */
export async function generatePreKeys(firstId, count) {
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const pair = await generateKeyPair();
    out.push({ keyId: firstId + i, privateKey: pair.privateKey, publicKey: encodeKey(pair.publicKey) });
  }
  return out;
}

// --- X3DH -------------------------------------------------------------------------------------

async function x3dhSecret(parts) {
  // SK = HKDF(F || DH1 || DH2 || DH3 [|| DH4]), F = 32 bytes 0xFF, salt 32 zero bytes.
  return hkdf(concat(new Uint8Array(32).fill(0xff), ...parts), new Uint8Array(32), INFO_X3DH, 32);
}

async function kdfRoot(rootKey, dhOut) {
  const out = await hkdf(dhOut, rootKey, INFO_RATCHET, 64);
  return [out.slice(0, 32), out.slice(32)];
}

/** KDF_CK: [next chain key, message key] = [HMAC(ck, 0x02), HMAC(ck, 0x01)]. */
async function kdfChain(chainKey) {
  const key = await subtle.importKey("raw", chainKey, { name: "HMAC", hash: "SHA-256" }, false,
    ["sign"]);
  const [next, message] = await Promise.all([subtle.sign("HMAC", key, Uint8Array.of(0x02)),
    subtle.sign("HMAC", key, Uint8Array.of(0x01))]);
  return [new Uint8Array(next), new Uint8Array(message)];
}

/**
 * The sender's side of X3DH with one device of a bundle (`GET /api/mailbox/keys/...`): checks
 * the signed prekey's XEdDSA signature, agrees on SK, and starts a Double Ratchet session that
 * sends prekey messages until the first answer arrives.
 */
export async function sessionInitiate({ identity, registrationId, bundleIdentityKey, device }) {
  const theirIdentity = fromBase64(bundleIdentityKey);
  const spk = fromBase64(device.signedPreKey.publicKey);
  if (!await xeddsaVerify(theirIdentity, spk, fromBase64(device.signedPreKey.signature))) {
    throw new MailCryptoError(`the signed prekey of device ${device.deviceId} is not signed by its operator's identity key`);
  }
  const opk = device.oneTimePreKey ? decodeKey(fromBase64(device.oneTimePreKey.publicKey),
    "the one-time prekey") : null;
  const spkRaw = decodeKey(spk, "the signed prekey");
  const base = await generateKeyPair();
  const parts = [
    await dh(identity.dhKey, spkRaw),
    await dh(base.privateKey, decodeKey(theirIdentity, "the identity key")),
    await dh(base.privateKey, spkRaw),
  ];
  if (opk) parts.push(await dh(base.privateKey, opk));
  const secret = await x3dhSecret(parts);
  const ratchet = await generateKeyPair();
  const [rootKey, sendChain] = await kdfRoot(secret, await dh(ratchet.privateKey, spkRaw));
  return {
    version: VERSION, deviceId: device.deviceId, registrationId: device.registrationId,
    theirIdentity, ad: concat(identity.publicKey, theirIdentity),
    ratchet, theirRatchet: spkRaw, rootKey, sendChain, receiveChain: null,
    sent: 0, received: 0, previousSent: 0, skipped: [], baseKey: encodeKey(base.publicKey),
    pending: { registrationId, signedPreKeyId: device.signedPreKey.keyId,
      oneTimePreKeyId: device.oneTimePreKey ? device.oneTimePreKey.keyId : 0 },
  };
}

/** What a prekey message says before it is decrypted: which of our keys it used. */
export function parsePrekeyMessage(content) {
  if (content.length < PREKEY_HEADER_BYTES + HEADER_BYTES + 16 || content[0] !== VERSION) {
    throw new MailCryptoError("not a prekey message of this format (version 1)");
  }
  return {
    registrationId: readUint32(content, 1), signedPreKeyId: readUint32(content, 5),
    oneTimePreKeyId: readUint32(content, 9),
    identityKey: content.slice(13, 46), baseKey: content.slice(46, 79),
    message: content.slice(PREKEY_HEADER_BYTES),
  };
}

/**
 * The receiver's side of X3DH for a parsed prekey message: `signedPreKey` and
 * `oneTimePreKey` ({privateKey, publicKey}, the latter null when the message used none) are the
 * ones its ids name. Returns the new session (before its first message is decrypted: pass the
 * message to `decrypt`, and keep the session only if that succeeds).
 */
export async function sessionRespond({ identity, signedPreKey, oneTimePreKey, prekeyMessage, deviceId }) {
  const theirIdentity = prekeyMessage.identityKey;
  const theirIdentityRaw = decodeKey(theirIdentity, "the sender's identity key");
  const baseRaw = decodeKey(prekeyMessage.baseKey, "the sender's base key");
  const parts = [
    await dh(signedPreKey.privateKey, theirIdentityRaw),
    await dh(identity.dhKey, baseRaw),
    await dh(signedPreKey.privateKey, baseRaw),
  ];
  if (oneTimePreKey) parts.push(await dh(oneTimePreKey.privateKey, baseRaw));
  const secret = await x3dhSecret(parts);
  return {
    version: VERSION, deviceId, registrationId: prekeyMessage.registrationId, theirIdentity,
    ad: concat(theirIdentity, identity.publicKey),
    ratchet: { privateKey: signedPreKey.privateKey, publicKey: decodeKey(signedPreKey.publicKey) },
    theirRatchet: null, rootKey: secret, sendChain: null, receiveChain: null,
    sent: 0, received: 0, previousSent: 0, skipped: [], baseKey: prekeyMessage.baseKey,
    pending: null,
  };
}

// --- the Double Ratchet -------------------------------------------------------------------------

async function messageKeys(messageKey) {
  const out = await hkdf(messageKey, new Uint8Array(32), INFO_MESSAGE, 44);
  const key = await subtle.importKey("raw", out.slice(0, 32), "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, iv: out.slice(32, 44) };
}

function headerBytes(ratchetKey, previous, number) {
  return concat([VERSION], encodeKey(ratchetKey), uint32(previous), uint32(number));
}

/**
 * Encrypt `plaintext` (bytes) in `session`. Resolves {session (the new state), type (PREKEY
 * until the other side has answered, then WHISPER), content (bytes)}.
 */
export async function encrypt(session, plaintext) {
  const [nextChain, messageKey] = await kdfChain(session.sendChain);
  const header = headerBytes(session.ratchet.publicKey, session.previousSent, session.sent);
  const { key, iv } = await messageKeys(messageKey);
  const sealed = new Uint8Array(await subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: concat(session.ad, header) }, key, plaintext));
  const whisper = concat(header, sealed);
  const next = { ...session, sendChain: nextChain, sent: session.sent + 1 };
  if (!session.pending) return { session: next, type: WHISPER, content: whisper };
  const pending = session.pending;
  const ourIdentity = session.ad.slice(0, 33);
  return {
    session: next, type: PREKEY,
    content: concat([VERSION], uint32(pending.registrationId), uint32(pending.signedPreKeyId),
      uint32(pending.oneTimePreKeyId), ourIdentity, session.baseKey, whisper),
  };
}

function parseWhisper(content) {
  if (content.length < HEADER_BYTES + 16 || content[0] !== VERSION) {
    throw new MailCryptoError("not a message of this format (version 1)");
  }
  return { header: content.slice(0, HEADER_BYTES), ratchetKey: decodeKey(content.slice(1, 34)),
    previous: readUint32(content, 34), number: readUint32(content, 38),
    sealed: content.slice(HEADER_BYTES) };
}

async function open(session, message, messageKey) {
  const { key, iv } = await messageKeys(messageKey);
  try {
    return new Uint8Array(await subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: concat(session.ad, message.header) }, key, message.sealed));
  } catch {
    throw new MailCryptoError("the message does not decrypt (altered, or not for this session)");
  }
}

async function skipTo(session, until) {
  if (session.receiveChain === null) return session;
  if (until - session.received > MAX_SKIP) {
    throw new MailCryptoError(`the message skips more than ${MAX_SKIP} messages of its chain`);
  }
  let chain = session.receiveChain;
  const skipped = session.skipped.slice();
  for (let n = session.received; n < until; n += 1) {
    const [nextChain, messageKey] = await kdfChain(chain);
    skipped.push({ ratchetKey: session.theirRatchet, number: n, messageKey });
    chain = nextChain;
  }
  return { ...session, receiveChain: chain, received: Math.max(until, session.received),
    skipped: skipped.slice(-MAX_SKIPPED) };
}

/**
 * Decrypt a whisper message's bytes in `session`. Resolves {session (the new state),
 * plaintext}; throws MailCryptoError (then the caller keeps the old state).
 */
export async function decrypt(session, content) {
  const message = parseWhisper(content);
  const index = session.skipped.findIndex((s) => s.number === message.number
    && equal(s.ratchetKey, message.ratchetKey));
  if (index >= 0) {
    const plaintext = await open(session, message, session.skipped[index].messageKey);
    const skipped = session.skipped.slice();
    skipped.splice(index, 1);
    return { session: { ...session, skipped, pending: null }, plaintext };
  }
  let state = session;
  if (!equal(message.ratchetKey, session.theirRatchet)) {
    state = await skipTo(state, message.previous);
    // A step of the DH ratchet: their new key, our new key.
    const [rootKey, receiveChain] = await kdfRoot(state.rootKey, await dh(state.ratchet.privateKey,
      message.ratchetKey));
    const ratchet = await generateKeyPair();
    const [nextRoot, sendChain] = await kdfRoot(rootKey, await dh(ratchet.privateKey, message.ratchetKey));
    state = { ...state, previousSent: state.sent, sent: 0, received: 0,
      theirRatchet: message.ratchetKey, ratchet, rootKey: nextRoot, receiveChain, sendChain };
  }
  if (message.number < state.received) {
    throw new MailCryptoError("this message was decrypted before (or its key was dropped)");
  }
  state = await skipTo(state, message.number);
  const [nextChain, messageKey] = await kdfChain(state.receiveChain);
  const plaintext = await open(state, message, messageKey);
  return { session: { ...state, receiveChain: nextChain, received: state.received + 1, pending: null },
    plaintext };
}

/**
 * A session that replaces `previous` with the same device (a prekey message with another base
 * key) and keeps it archived: when both sides started a session at once, each answers in the
 * session the other started, and the first message that decrypts in an archived one makes it
 * current again (`decryptWithArchive`), so both sides end in the same session.
 */
export function supersede(session, previous) {
  if (!previous) return session;
  const { archived = [], ...state } = previous;
  return { ...session, archived: [state, ...archived].slice(0, ARCHIVED) };
}

/** Whether `baseKey` started this session or one of its archived ones. */
export const startedBy = (session, baseKey) => [session, ...(session.archived || [])]
  .some((s) => equal(s.baseKey, baseKey));

/**
 * `decrypt` in the session or, failing that, in its archived ones, newest first. Resolves
 * {session (the one that decrypted, current now, the others archived), plaintext}.
 */
export async function decryptWithArchive(session, content) {
  const { archived = [], ...current } = session;
  const candidates = [current, ...archived];
  let first = null;
  for (let i = 0; i < candidates.length; i += 1) {
    try {
      const opened = await decrypt(candidates[i], content);
      const others = candidates.filter((_, j) => j !== i);
      return { session: { ...opened.session, archived: others.slice(0, ARCHIVED) },
        plaintext: opened.plaintext };
    } catch (err) {
      if (!(err instanceof MailCryptoError)) throw err;
      first = first || err;
    }
  }
  throw first;
}

/** A human-comparable fingerprint of an identity key (SHA-256, first 20 bytes, in groups). */
export async function fingerprint(identityKey) {
  const digest = new Uint8Array(await subtle.digest("SHA-256", identityKey)).slice(0, 20);
  return hex(digest).match(/.{4}/g).join(" ");
}
