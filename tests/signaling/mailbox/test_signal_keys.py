"""XEdDSA verification against signatures made by the `xeddsa` package (the spec's signer,
which the `x3dh` package uses for signed prekeys) and by libsignal's scheme (the Edwards sign
bit carried in the signature)."""

from __future__ import annotations

import secrets

import pytest
import xeddsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signaling.signal_keys import KeyFormatError, decode_public_key, xeddsa_verify

P = 2**255 - 19


def spec_pair() -> tuple[bytes, bytes]:
    """A signing key as the `x3dh` package makes its identity key sign (sign bit forced to 0)."""
    priv = secrets.token_bytes(32)
    return xeddsa.priv_force_sign(priv, False), b"\x05" + xeddsa.priv_to_curve25519_pub(priv)


def test_spec_signatures_verify_and_tampering_fails() -> None:
    for _ in range(20):
        priv, public = spec_pair()
        message = b"\x05" + secrets.token_bytes(32)
        signature = xeddsa.ed25519_priv_sign(priv, message)
        assert xeddsa_verify(public, message, signature)
        assert not xeddsa_verify(public, message + b"x", signature)
        flipped = bytearray(signature)
        flipped[secrets.randbelow(63)] ^= 1 << secrets.randbelow(8)
        assert not xeddsa_verify(public, message, bytes(flipped))
        _, other = spec_pair()
        assert not xeddsa_verify(other, message, signature)


def libsignal_signature(message: bytes) -> tuple[bytes, bytes, int]:
    """An Ed25519 key used as libsignal does: the Montgomery form is the public key, the
    Edwards sign bit rides in the top bit of the signature."""
    key = Ed25519PrivateKey.generate()
    edwards = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sign = edwards[31] >> 7
    y = int.from_bytes(edwards, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, P - 2, P) % P
    signature = bytearray(key.sign(message))
    signature[63] |= sign << 7
    return b"\x05" + u.to_bytes(32, "little"), bytes(signature), sign


def test_libsignal_signatures_with_either_sign_bit() -> None:
    seen = set()
    while len(seen) < 2:
        message = secrets.token_bytes(33)
        public, signature, sign = libsignal_signature(message)
        seen.add(sign)
        assert xeddsa_verify(public, message, signature)
        if sign:  # the sign bit is what picks the Edwards point: without it, no match
            cleared = bytearray(signature)
            cleared[63] &= 0x7F
            assert not xeddsa_verify(public, message, bytes(cleared))


def test_malformed_inputs_are_refused_not_raised() -> None:
    priv, public = spec_pair()
    message = b"m"
    signature = xeddsa.ed25519_priv_sign(priv, message)
    assert not xeddsa_verify(public[:-1], message, signature)
    assert not xeddsa_verify(public, message, signature[:-1])
    assert not xeddsa_verify(b"\x05" + (P + 1).to_bytes(32, "little"), message, signature)
    assert not xeddsa_verify(b"\x05" + (P - 1).to_bytes(32, "little"), message, signature)
    high_s = bytearray(signature)
    high_s[63] |= 0x60
    assert not xeddsa_verify(public, message, bytes(high_s))


def test_decode_public_key_names_the_problem() -> None:
    with pytest.raises(KeyFormatError, match="33 bytes"):
        decode_public_key(b"\x05" + b"\x00" * 31)
    with pytest.raises(KeyFormatError, match="0x05"):
        decode_public_key(b"\x06" + b"\x00" * 32)
    assert decode_public_key(b"\x05" + b"\x01" * 32) == b"\x01" * 32
