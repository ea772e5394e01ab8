"""The installer's own signature checks (standard library only) agree with `cryptography` on
many keys and messages, refuse every altered signature, and meet malformed input with their
own error, never a crash."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import meshsite_install as inst
from tests.certificates import pki

RNG = random.Random(1234)


def _flip(data: bytes) -> bytes:
    index = RNG.randrange(len(data))
    return data[:index] + bytes([data[index] ^ (1 << RNG.randrange(8))]) + data[index + 1:]


def test_ed25519_agrees_with_cryptography():
    for _ in range(60):
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        message = os.urandom(RNG.randrange(0, 200))
        signature = key.sign(message)
        assert inst.ed25519_verify(public, signature, message)
        assert not inst.ed25519_verify(public, _flip(signature), message)
        assert not inst.ed25519_verify(public, signature, message + b"x")
        assert not inst.ed25519_verify(_flip(public), signature, message)
    # S >= L (a malleable signature) is refused, as cryptography refuses it.
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    signature = key.sign(b"m")
    s = int.from_bytes(signature[32:], "little") + inst._L
    assert not inst.ed25519_verify(public, signature[:32] + s.to_bytes(32, "little"), b"m")


def test_rsa_pkcs1v15_agrees_with_cryptography():
    keys = [pki.rsa_key("lotw-root"), pki.rsa_key("installer-1024", 1024),
            rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505 - LoTW user keys are 1024-bit
            rsa.generate_private_key(public_exponent=3, key_size=1024),  # noqa: S505 - LoTW user keys are 1024-bit
            rsa.generate_private_key(public_exponent=65537, key_size=3072)]
    for key in keys:
        numbers = key.public_key().public_numbers()
        for _ in range(8):
            message = os.urandom(RNG.randrange(0, 300))
            signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
            assert inst.rsa_pkcs1v15_verify(numbers.n, numbers.e, signature, message)
            assert not inst.rsa_pkcs1v15_verify(numbers.n, numbers.e, _flip(signature), message)
            assert not inst.rsa_pkcs1v15_verify(numbers.n, numbers.e, signature, message + b"!")
        pss = key.sign(b"m", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        assert not inst.rsa_pkcs1v15_verify(numbers.n, numbers.e, pss, b"m")
        sha1 = key.sign(b"m", padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - refused
        assert not inst.rsa_pkcs1v15_verify(numbers.n, numbers.e, sha1, b"m")


def test_ecdsa_p256_agrees_with_cryptography():
    for _ in range(20):
        key = ec.generate_private_key(ec.SECP256R1())
        point = key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        message = os.urandom(RNG.randrange(0, 100))
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
        assert inst.ecdsa_p256_verify(point, signature, message)
        assert not inst.ecdsa_p256_verify(point, signature, message + b"x")
        assert not inst.ecdsa_p256_verify(point, _flip(signature), message)


def test_certificates_read_like_cryptography_reads_them():
    identities = [pki.lotw_user("W1AW"), pki.meshsite_chain("DL1BOB", "ed25519")[1],
                  pki.meshsite_chain("G4CAR", "ec")[1]]
    for identity in identities:
        certs = [identity.cert, *identity.chain]
        parsed = [inst.Certificate(c.public_bytes(serialization.Encoding.DER)) for c in certs]
        for cert, mine in zip(certs, parsed, strict=True):
            assert mine.subject == cert.subject.public_bytes()
            assert mine.issuer == cert.issuer.public_bytes()
            assert mine.not_before == cert.not_valid_before_utc
            assert mine.not_after == cert.not_valid_after_utc
        # Each certificate is issued by the next; the LoTW production CA expired after it
        # issued the user's certificate and is still accepted, as the station accepts it.
        for child, parent in itertools.pairwise(parsed):
            assert parent.issued(child) and parent.is_ca
        path = inst.chain_verify(parsed[0], parsed[1:-1], parsed[-1], dt.datetime.now(dt.UTC))
        assert [p.der for p in path] == [p.der for p in parsed]
        other_root = pki.meshsite_root("ed25519" if identity is not identities[0] else "ec")
        with pytest.raises(inst.InstallerError, match="does not chain to the trust root"):
            inst.chain_verify(parsed[0], parsed[1:-1], inst.Certificate(
                other_root.cert.public_bytes(serialization.Encoding.DER)),
                dt.datetime.now(dt.UTC))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_malformed_der_is_an_installer_error(data):
    with contextlib.suppress(inst.InstallerError):
        inst.Certificate(data)


def test_damaged_certificates_are_installer_errors():
    der = pki.lotw_user("W1AW").cert.public_bytes(serialization.Encoding.DER)
    for _ in range(400):
        damaged = bytearray(der)
        for _ in range(RNG.randrange(1, 4)):
            damaged[RNG.randrange(len(damaged))] = RNG.randrange(256)
        cut = damaged[:RNG.randrange(len(damaged) + 1)] if RNG.random() < 0.3 else damaged
        with contextlib.suppress(inst.InstallerError):
            inst.Certificate(bytes(cut))
    with pytest.raises(inst.InstallerError):
        inst.load_pems("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
    assert inst.load_pems("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----") == []
