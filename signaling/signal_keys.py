"""Signal's public-key encoding and XEdDSA signature verification (no Django imports).

Keys travel as Signal encodes them: the type byte 0x05 (Curve25519) then the 32-byte X25519
public key (the Montgomery u-coordinate, little-endian). A signed prekey's signature is XEdDSA
(Perrin, "The XEdDSA and VXEdDSA Signature Schemes", 2016) by the identity key over that 33-byte
encoding.

XEdDSA verification is Ed25519 verification against the Edwards form of the Montgomery key:
y = (u - 1) / (u + 1) mod p. The Montgomery key does not say which of the two Edwards points
with that y is meant; the spec's signers force the sign bit to 0, while Signal's own clients
(libsignal) keep the private key as it is and carry the Edwards sign bit in the top bit of the
signature's last byte, which an honest `s` (< 2^253) never sets. Reading the sign bit from
there and clearing it accepts both kinds of signature, as libsignal does.
"""

from __future__ import annotations

import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KEY_TYPE_DJB = 0x05
ENCODED_KEY_BYTES = 33
SIGNATURE_BYTES = 64
_P = 2**255 - 19


class KeyFormatError(ValueError):
    """A public key or signature that is not in Signal's encoding; the message says how."""


def decode_public_key(value: bytes) -> bytes:
    """The 32 raw bytes of a Signal-encoded X25519 public key (0x05 + 32 bytes)."""
    if len(value) != ENCODED_KEY_BYTES:
        raise KeyFormatError(f"a public key is {ENCODED_KEY_BYTES} bytes (0x05 then the 32-byte "
                             f"X25519 key), got {len(value)}")
    if value[0] != KEY_TYPE_DJB:
        raise KeyFormatError(f"a public key starts with the type byte 0x05 (Curve25519), got "
                             f"0x{value[0]:02x}")
    return value[1:]


def montgomery_to_edwards(u_bytes: bytes, sign: int) -> bytes | None:
    """The compressed Edwards25519 point for Montgomery u (32 bytes, little-endian) with the
    given sign bit; None when u is not a canonical field element or has no Edwards image."""
    u = int.from_bytes(u_bytes, "little")
    if u >= _P:  # the spec: reject, do not reduce
        return None
    denominator = (u + 1) % _P
    if denominator == 0:
        return None
    y = (u - 1) * pow(denominator, _P - 2, _P) % _P
    return (y | (sign & 1) << 255).to_bytes(32, "little")


def xeddsa_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` (64 bytes, R || s) is an XEdDSA signature of `message` by the
    X25519 key `public_key` (32 raw bytes, or 33 in Signal's encoding)."""
    if len(public_key) == ENCODED_KEY_BYTES:
        try:
            public_key = decode_public_key(public_key)
        except KeyFormatError:
            return False
    if len(public_key) != 32 or len(signature) != SIGNATURE_BYTES:
        return False
    sign = signature[63] >> 7
    s_top = signature[63] & 0x7F
    if s_top & 0xE0:  # s >= 2^253: never made by a signer
        return False
    edwards = montgomery_to_edwards(public_key, sign)
    if edwards is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(edwards).verify(
            signature[:63] + bytes([s_top]), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
