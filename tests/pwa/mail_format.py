"""The Mail page's message format (docs/mailbox.md, "The Mail page's message format") written
again in Python from the document alone, with the `cryptography` package's primitives and the
`xeddsa` package's signing: the browser test exchanges messages between the page and this
device, so the document is what the page does.

Only what the test needs: a device that registers, answers X3DH as the receiver of a prekey
message, and runs the Double Ratchet both ways (no skipped keys: the test's messages arrive
in order)."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import xeddsa
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREKEY, WHISPER = 3, 1
VERSION = 1
HEADER = 1 + 33 + 4 + 4
PREKEY_HEADER = 1 + 4 + 4 + 4 + 33 + 33
DEVICE_PREFIX = b"meshsite-mailbox-device-v1\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def mac(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    """DH with a Signal-encoded (0x05 + 32) or raw public key."""
    raw = public[1:] if len(public) == 33 else public
    return private.exchange(X25519PublicKey.from_public_bytes(raw))


def encoded(private: X25519PrivateKey) -> bytes:
    return b"\x05" + private.public_key().public_bytes_raw()


def kdf_rk(root: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    out = hkdf(dh_out, root, b"MeshsiteMailboxRatchet", 64)
    return out[:32], out[32:]


def kdf_ck(chain: bytes) -> tuple[bytes, bytes]:
    """(next chain key, message key)."""
    return mac(chain, b"\x02"), mac(chain, b"\x01")


def seal(message_key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    out = hkdf(message_key, bytes(32), b"MeshsiteMailboxMessageKeys", 44)
    return AESGCM(out[:32]).encrypt(out[32:], plaintext, associated)


def unseal(message_key: bytes, sealed: bytes, associated: bytes) -> bytes:
    out = hkdf(message_key, bytes(32), b"MeshsiteMailboxMessageKeys", 44)
    return AESGCM(out[:32]).decrypt(out[32:], sealed, associated)


@dataclass
class Session:
    ad: bytes
    registration_id: int
    ratchet: X25519PrivateKey
    their_ratchet: bytes | None = None
    root: bytes = b""
    send_chain: bytes | None = None
    receive_chain: bytes | None = None
    sent: int = 0
    received: int = 0
    previous: int = 0


@dataclass
class MailFormatDevice:
    """A device of the page's format. Keys are X25519 private keys; the identity key signs
    XEdDSA through the `xeddsa` package."""

    identity_priv: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    signed_prekey: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    prekeys: dict[int, X25519PrivateKey] = field(
        default_factory=lambda: {n: X25519PrivateKey.generate() for n in range(1, 6)})
    registration_id: int = field(default_factory=lambda: secrets.randbelow(16380) + 1)
    sessions: dict[tuple[str, int], Session] = field(default_factory=dict)
    token: str = ""
    device_id: int = 0

    @property
    def identity(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.identity_priv)

    def xeddsa_sign(self, message: bytes) -> bytes:
        # XEdDSA: sign with the scalar (negated if need be) whose Edwards point has sign bit 0
        return xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(self.identity_priv, False),
                                        message)

    def registration(self, certificate: str, chain: list[str], sign, nonce: dict) -> dict:
        """The POST /api/mailbox/devices body; `sign(message)` is the license key's base64
        signature."""
        message = base64.b64decode(nonce["message"])
        assert message.startswith(DEVICE_PREFIX)
        spk = encoded(self.signed_prekey)
        return {"certificate": certificate, "chain": chain, "nonce": nonce["nonce"],
                "signature": sign(message), "identityKey": b64(encoded(self.identity)),
                "signedPreKey": {"keyId": 1, "publicKey": b64(spk),
                                 "signature": b64(self.xeddsa_sign(spk))},
                "registrationId": self.registration_id,
                "oneTimePreKeys": [{"keyId": n, "publicKey": b64(encoded(k))}
                                   for n, k in self.prekeys.items()]}

    # -- receiving ------------------------------------------------------------------------

    def decrypt(self, envelope: dict[str, Any]) -> str:
        content = base64.b64decode(envelope["content"])
        peer = (envelope["source"], envelope["sourceDevice"])
        if envelope["messageType"] == PREKEY:
            assert content[0] == VERSION
            registration_id = int.from_bytes(content[1:5], "big")
            spk_id = int.from_bytes(content[5:9], "big")
            opk_id = int.from_bytes(content[9:13], "big")
            ik_a, ek_a = content[13:46], content[46:79]
            assert spk_id == 1
            parts = [dh(self.signed_prekey, ik_a), dh(self.identity, ek_a),
                     dh(self.signed_prekey, ek_a)]
            if opk_id:
                parts.append(dh(self.prekeys.pop(opk_id), ek_a))
            secret = hkdf(b"\xff" * 32 + b"".join(parts), bytes(32), b"MeshsiteMailboxX3DH", 32)
            self.sessions[peer] = Session(ad=ik_a + encoded(self.identity),
                                          registration_id=registration_id,
                                          ratchet=self.signed_prekey, root=secret)
            content = content[PREKEY_HEADER:]
        session = self.sessions[peer]
        assert content[0] == VERSION
        header, ratchet_key = content[:HEADER], content[1:34]
        number = int.from_bytes(content[38:42], "big")
        if ratchet_key != session.their_ratchet:  # the DH ratchet step
            session.previous, session.sent, session.received = session.sent, 0, 0
            session.their_ratchet = ratchet_key
            session.root, session.receive_chain = kdf_rk(session.root,
                                                         dh(session.ratchet, ratchet_key))
            session.ratchet = X25519PrivateKey.generate()
            session.root, session.send_chain = kdf_rk(session.root,
                                                      dh(session.ratchet, ratchet_key))
        assert number == session.received, "this client handles messages in order only"
        assert session.receive_chain is not None
        session.receive_chain, message_key = kdf_ck(session.receive_chain)
        session.received += 1
        plaintext = unseal(message_key, content[HEADER:], session.ad + header)
        return json.loads(plaintext)["text"]

    # -- sending (in a session the other side started) --------------------------------------

    def encrypt(self, callsign: str, device_id: int, text: str) -> dict[str, Any]:
        session = self.sessions[(callsign, device_id)]
        assert session.send_chain is not None
        header = (bytes([VERSION]) + encoded(session.ratchet)
                  + session.previous.to_bytes(4, "big") + session.sent.to_bytes(4, "big"))
        session.send_chain, message_key = kdf_ck(session.send_chain)
        session.sent += 1
        sealed = seal(message_key, json.dumps({"text": text}).encode(), session.ad + header)
        return {"deviceId": device_id, "registrationId": session.registration_id,
                "type": WHISPER, "content": b64(header + sealed)}
