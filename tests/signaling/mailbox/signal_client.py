"""A Signal-protocol client for the tests, made of the `x3dh` and `doubleratchet` packages: X3DH
over the station's bundles, a Double Ratchet session, and the station's HTTP and WebSocket
contract. The station sees only the opaque bytes this produces."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import x3dh
import xeddsa
from doubleratchet import DoubleRatchet, EncryptedMessage, Header
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from tests.certificates import pki

INFO = b"meshsite-mailbox-test"
PREKEY_MESSAGE = 3
WHISPER_MESSAGE = 1
DEVICE_PREFIX = b"meshsite-mailbox-device-v1\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class KeyState(x3dh.BaseState):
    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return b"\x05" + pub


class _RootKdf(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return INFO + b" root"


class _MessageKdf(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class _Aead(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return INFO + b" message"


class _Ratchet(DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
        return (associated_data + header.ratchet_pub
                + header.previous_sending_chain_length.to_bytes(8, "big")
                + header.sending_chain_length.to_bytes(8, "big"))


RATCHET = {"diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
           "root_chain_kdf": _RootKdf, "message_chain_kdf": _MessageKdf,
           "message_chain_constant": b"\x01\x02", "dos_protection_threshold": 100,
           "max_num_skipped_message_keys": 1000, "aead": _Aead}


class SignalDevice:
    """One device: an identity key, a signed prekey, `prekeys` one-time prekeys with ids."""

    def __init__(self, prekeys: int = 10, *, sibling: SignalDevice | None = None) -> None:
        """`sibling`: another device of the same operator (the identity key is shared)."""
        self.identity_seed = sibling.identity_seed if sibling else secrets.token_bytes(32)
        self.state = KeyState.create(x3dh.IdentityKeyFormat.CURVE_25519, x3dh.HashFunction.SHA_256,
                                     INFO, x3dh.identity_key_pair.IdentityKeyPairSeed(
                                         self.identity_seed))
        self.state.generate_pre_keys(prekeys)
        self.registration_id = secrets.randbelow(16380) + 1
        self.token = ""
        self.device_id = 0
        self.callsign = ""
        # (callsign, device id) -> (ratchet, the X3DH associated data)
        self.sessions: dict[tuple[str, int], tuple[_Ratchet, bytes]] = {}

    @property
    def identity_key(self) -> bytes:
        return b"\x05" + self.state.bundle.identity_key

    def signed_prekey(self, key_id: int = 1) -> dict[str, Any]:
        bundle = self.state.bundle
        return {"keyId": key_id, "publicKey": b64(b"\x05" + bundle.signed_pre_key),
                "signature": b64(bundle.signed_pre_key_sig)}

    def one_time_prekeys(self, first_id: int = 1) -> list[dict[str, Any]]:
        return [{"keyId": first_id + n, "publicKey": b64(b"\x05" + pub)}
                for n, pub in enumerate(sorted(self.state.bundle.pre_keys))]

    def registration(self, who: pki.Identity, nonce: dict[str, Any]) -> dict[str, Any]:
        message = DEVICE_PREFIX + (f"station:{nonce['stationId']}\nnonce:{nonce['nonce']}\n"
                                   .encode())
        assert base64.b64decode(nonce["message"]) == message
        return {"certificate": who.pem, "chain": who.chain_pem, "nonce": nonce["nonce"],
                "signature": who.sign(message), "identityKey": b64(self.identity_key),
                "signedPreKey": self.signed_prekey(), "registrationId": self.registration_id,
                "oneTimePreKeys": self.one_time_prekeys()}

    # -- the active side (Alice) ------------------------------------------------------------

    async def encrypt_first(self, bundle: dict[str, Any], device: dict[str, Any],
                            plaintext: bytes) -> dict[str, Any]:
        """An X3DH prekey message to one device of a bundle, as an envelope for PUT."""
        otpk = device["oneTimePreKey"]
        their = x3dh.Bundle(
            identity_key=unb64(bundle["identityKey"])[1:],
            signed_pre_key=unb64(device["signedPreKey"]["publicKey"])[1:],
            signed_pre_key_sig=unb64(device["signedPreKey"]["signature"]),
            pre_keys=frozenset() if otpk is None else frozenset({unb64(otpk["publicKey"])[1:]}))
        secret, associated, header = await self.state.get_shared_secret_active(
            their, require_pre_key=otpk is not None)
        ratchet, encrypted = await _Ratchet.encrypt_initial_message(
            shared_secret=secret, recipient_ratchet_pub=their.signed_pre_key,
            message=plaintext, associated_data=associated, **RATCHET)
        self.sessions[(bundle["callsign"], device["deviceId"])] = (ratchet, associated)
        content = json.dumps({
            "ik": b64(header.identity_key), "ek": b64(header.ephemeral_key),
            "spk": b64(header.signed_pre_key),
            "pk": None if header.pre_key is None else b64(header.pre_key),
            "rk": b64(encrypted.header.ratchet_pub),
            "pn": encrypted.header.previous_sending_chain_length,
            "n": encrypted.header.sending_chain_length,
            "ct": b64(encrypted.ciphertext)}).encode()
        return {"deviceId": device["deviceId"], "registrationId": device["registrationId"],
                "type": PREKEY_MESSAGE, "content": b64(content)}

    # -- the passive side (Bob) -------------------------------------------------------------

    async def decrypt_first(self, envelope: dict[str, Any]) -> bytes:
        data = json.loads(unb64(envelope["content"]))
        header = x3dh.Header(identity_key=unb64(data["ik"]), ephemeral_key=unb64(data["ek"]),
                             signed_pre_key=unb64(data["spk"]),
                             pre_key=None if data["pk"] is None else unb64(data["pk"]))
        secret, associated, spk = await self.state.get_shared_secret_passive(
            header, require_pre_key=data["pk"] is not None)
        message = EncryptedMessage(header=Header(unb64(data["rk"]), data["pn"], data["n"]),
                                   ciphertext=unb64(data["ct"]))
        ratchet, plaintext = await _Ratchet.decrypt_initial_message(
            shared_secret=secret, own_ratchet_priv=spk.priv, message=message,
            associated_data=associated, **RATCHET)
        self.sessions[(envelope["source"], envelope["sourceDevice"])] = (ratchet, associated)
        return plaintext

    # -- later messages of a session ----------------------------------------------------------

    async def encrypt_next(self, callsign: str, device_id: int, registration_id: int,
                           plaintext: bytes) -> dict[str, Any]:
        ratchet, associated = self.sessions[(callsign, device_id)]
        encrypted = await ratchet.encrypt_message(plaintext, associated)
        content = json.dumps({"rk": b64(encrypted.header.ratchet_pub),
                              "pn": encrypted.header.previous_sending_chain_length,
                              "n": encrypted.header.sending_chain_length,
                              "ct": b64(encrypted.ciphertext)}).encode()
        return {"deviceId": device_id, "registrationId": registration_id,
                "type": WHISPER_MESSAGE, "content": b64(content)}

    async def decrypt_next(self, envelope: dict[str, Any]) -> bytes:
        ratchet, associated = self.sessions[(envelope["source"], envelope["sourceDevice"])]
        data = json.loads(unb64(envelope["content"]))
        message = EncryptedMessage(header=Header(unb64(data["rk"]), data["pn"], data["n"]),
                                   ciphertext=unb64(data["ct"]))
        return await ratchet.decrypt_message(message, associated)


def random_key() -> str:
    """A well-formed Signal public key nobody holds the private key of."""
    return b64(b"\x05" + xeddsa.priv_to_curve25519_pub(secrets.token_bytes(32)))
