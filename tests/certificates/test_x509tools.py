"""The pure X.509 module: formats, LoTW fields, chain walking, every failure code."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certificates.errors import CertificateError
from certificates.x509tools import (
    MESHSITE_LICENSE_OID,
    decode_license_extension,
    fingerprint,
    gzip_tq6,
    load_certificates,
    normalize_callsign,
    read_license,
    to_pem,
    validate_chain,
    verify_signature,
)
from tests.certificates import pki
from tests.environment import requirement_missing

NOW = pki.NOW


def code_of(excinfo) -> str:
    return excinfo.value.code


def test_lotw_fixture_is_shaped_like_the_real_thing():
    user = pki.lotw_user("W1AW")
    cert = user.cert
    assert cert.public_key().key_size == 1024
    assert user.chain[0].public_key().key_size == 2048
    first = cert.subject.rdns[0].get_attributes_for_oid(pki.LOTW_CALLSIGN_OID)[0]
    assert first.value == "W1AW" and first._type.name == "UTF8String"
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    raw = cert.extensions.get_extension_for_oid(pki.LOTW_QSO_NOT_BEFORE_OID)
    assert raw.critical is False and raw.value.value == b"1945-11-01"
    assert user.chain[0].not_valid_after_utc < NOW  # production CA expired after issuing


def test_read_license_lotw_fields():
    info = read_license(pki.lotw_user("W1AW").cert)
    assert info.callsign == "W1AW"
    assert info.qso_not_before == dt.date(1945, 11, 1)
    assert info.qso_not_after == dt.date(2030, 12, 31)
    assert info.dxcc == 291
    assert info.license_class == "" and info.can_issue is False


def test_read_license_from_our_extension_and_cn():
    root = pki.meshsite_root()
    only_ext = pki.issue(root, callsign="DL1ABC", lotw_attribute=False, cn="Anna",
                         license_class="A", ca=True, can_issue=True)
    info = read_license(only_ext.cert)
    assert (info.callsign, info.license_class, info.can_issue) == ("DL1ABC", "A", True)
    only_cn = pki.issue(root, callsign="ve3xyz", lotw_attribute=False, with_extension=False)
    assert read_license(only_cn.cert).callsign == "VE3XYZ"
    ext = only_ext.cert.extensions.get_extension_for_oid(MESHSITE_LICENSE_OID)
    assert decode_license_extension(ext.value.value) == ("DL1ABC", "A", True)


@pytest.mark.parametrize("good", ["W1AW", "DL1ABC", "VE3/W1AW/P", "2E0ABC", "9A1A", "K1ABC/MM"])
def test_callsign_pattern_accepts(good):
    assert normalize_callsign(good.lower()) == good


@pytest.mark.parametrize("bad", ["", "GUEST", "W1", "1234", "W1AW!", "A" * 30, "W1AW/P/Q/R"])
def test_callsign_pattern_rejects(bad):
    with pytest.raises(CertificateError) as excinfo:
        normalize_callsign(bad)
    assert code_of(excinfo) == "bad_callsign"


def test_load_pem_der_bundle_and_tq6():
    user = pki.lotw_user("W1AW")
    bundle = load_certificates((user.pem + "".join(user.chain_pem)).encode())
    assert fingerprint(bundle.certificate) == fingerprint(user.cert)
    assert len(bundle.chain) == 2 and bundle.format == "pem"
    # the end certificate is found even when listed last
    reordered = load_certificates("".join(reversed([user.pem, *user.chain_pem])))
    assert fingerprint(reordered.certificate) == fingerprint(user.cert)
    der = load_certificates(user.cert.public_bytes(serialization.Encoding.DER))
    assert der.format == "der" and der.chain == []
    tq6 = load_certificates(gzip_tq6(user.chain[1], [user.chain[0]], user.cert))
    assert tq6.format == "tq6" and fingerprint(tq6.certificate) == fingerprint(user.cert)
    assert [fingerprint(c) for c in tq6.chain] == [fingerprint(c) for c in user.chain]


def test_load_pkcs12_with_password_and_wrong_password():
    user = pki.lotw_user("W1AW")
    blob = pkcs12.serialize_key_and_certificates(
        b"TrustedQSL user certificate", user.key, user.cert, user.chain,
        serialization.BestAvailableEncryption(b"s3cret"))
    bundle = load_certificates(blob, b"s3cret")
    assert bundle.format == "pkcs12" and bundle.private_key is not None
    assert fingerprint(bundle.certificate) == fingerprint(user.cert)
    with pytest.raises(CertificateError) as excinfo:
        load_certificates(blob, b"wrong")
    assert code_of(excinfo) == "bad_password"
    with pytest.raises(CertificateError) as excinfo:
        load_certificates(blob)
    assert code_of(excinfo) == "bad_password"


def test_load_legacy_rc2_40_pkcs12(tmp_path):
    """Older TQSL exports use RC2-40/SHA-1; `cryptography` must read them."""
    if shutil.which("openssl") is None:
        requirement_missing("needs the openssl CLI to build a legacy RC2-40 PKCS#12 fixture "
                            "(apt-get install openssl)")
    user = pki.lotw_user("W1AW")
    (tmp_path / "cert.pem").write_text(user.pem + "".join(user.chain_pem))
    (tmp_path / "key.pem").write_bytes(pki.private_pem(user.key))
    result = subprocess.run(
        ["openssl", "pkcs12", "-export", "-legacy", "-certpbe", "PBE-SHA1-RC2-40",
         "-keypbe", "PBE-SHA1-3DES", "-in", str(tmp_path / "cert.pem"), "-inkey",
         str(tmp_path / "key.pem"), "-passout", "pass:tqsl", "-name",
         "TrustedQSL user certificate", "-out", str(tmp_path / "old.p12")],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        requirement_missing(f"openssl cannot write RC2-40 here: {result.stderr[-200:]}")
    dump = subprocess.run(["openssl", "pkcs12", "-legacy", "-info", "-noout", "-passin",
                           "pass:tqsl", "-in", str(tmp_path / "old.p12")],
                          capture_output=True, text=True, check=False)
    assert "RC2" in dump.stderr + dump.stdout
    bundle = load_certificates((tmp_path / "old.p12").read_bytes(), b"tqsl")
    assert fingerprint(bundle.certificate) == fingerprint(user.cert)
    assert bundle.private_key is not None


# --- failure codes from real bad inputs (pure level) ---------------------------------------------


def test_garbage_is_malformed():
    with pytest.raises(CertificateError) as excinfo:
        load_certificates(b"this is not a certificate at all")
    assert code_of(excinfo) == "malformed"


def test_truncated_der_is_malformed():
    der = pki.lotw_user("W1AW").cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(CertificateError) as excinfo:
        load_certificates(der[: len(der) // 2])
    assert code_of(excinfo) == "malformed"


def test_broken_tq6_is_malformed():
    with pytest.raises(CertificateError) as excinfo:
        load_certificates(gzip.compress(b"<tqsldata></tqsldata>"))
    assert code_of(excinfo) == "malformed"


def test_eleven_kilobyte_certificate_is_too_large():
    root = pki.meshsite_root()
    big = pki.issue(root, callsign="W1BIG", extra_extensions=[
        x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"),
                                   b"x" * 11 * 1024)])
    with pytest.raises(CertificateError) as excinfo:
        load_certificates(big.pem)
    assert code_of(excinfo) == "too_large"
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(big.cert, [], [root.cert], now=NOW)
    assert code_of(excinfo) == "too_large"


def test_chain_of_eleven_is_too_deep():
    root = pki.meshsite_root()
    parent = root
    for _ in range(11):
        parent = pki.issue(parent, callsign=None, cn="level", ca=True)
    user = pki.issue(parent, callsign="W1DEEP")
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, user.chain[:11], [root.cert], now=NOW)
    assert code_of(excinfo) == "chain_too_deep"
    with pytest.raises(CertificateError) as excinfo:
        load_certificates("".join([user.pem, *user.chain_pem]))
    assert code_of(excinfo) == "chain_too_deep"


def test_wrong_issuer_is_chain_incomplete():
    root, user = pki.meshsite_chain("DL1BOB")
    unrelated = pki.issue(root, callsign="DL0XYZ", ca=True)
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, [unrelated.cert], [root.cert], now=NOW)
    assert code_of(excinfo) == "chain_incomplete"
    assert "DL0CA" in excinfo.value.detail


def test_issuer_with_the_right_name_but_another_key_is_bad_signature():
    _, user = pki.meshsite_chain("DL1BOB")
    other_root, other = pki.meshsite_chain("DL2XX")  # its intermediate is also named DL0CA
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, [other.chain[0]], [other_root.cert], now=NOW)
    assert code_of(excinfo) == "bad_signature"


def test_flipped_signature_byte_is_bad_signature():
    root, user = pki.meshsite_chain("DL1BOB")
    der = bytearray(user.cert.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(tampered, user.chain, [root.cert], now=NOW)
    assert code_of(excinfo) == "bad_signature"


def test_self_signed_non_root_is_untrusted_root():
    root = pki.meshsite_root()
    stranger = pki.meshsite_root()
    user = pki.issue(stranger, callsign="N0MAL")
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, user.chain, [root.cert], now=NOW)
    assert code_of(excinfo) == "untrusted_root"
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(stranger.cert, [], [root.cert], now=NOW)
    assert code_of(excinfo) == "untrusted_root"


def test_end_entity_issuer_is_not_a_ca():
    root = pki.meshsite_root()
    leaf = pki.issue(root, callsign="W1LEAF")
    child = pki.issue(leaf, callsign="W1KID")
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(child.cert, child.chain, [root.cert], now=NOW)
    assert code_of(excinfo) == "not_a_ca"


def test_path_length_exceeded():
    root = pki.meshsite_root()
    limited = pki.issue(root, callsign="DL0CA", ca=True, path_length=0)
    sub = pki.issue(limited, callsign="DL0SUB", ca=True)
    user = pki.issue(sub, callsign="DL1SUB")
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, user.chain, [root.cert], now=NOW)
    assert code_of(excinfo) == "path_length_exceeded"


def test_expired_end_certificate_and_the_allow_setting():
    root = pki.meshsite_root()
    old = pki.issue(root, callsign="W1OLD", not_before=NOW - 400 * pki.DAY,
                    not_after=NOW - pki.DAY)
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(old.cert, old.chain, [root.cert], now=NOW)
    assert code_of(excinfo) == "expired"
    assert validate_chain(old.cert, old.chain, [root.cert], now=NOW, allow_expired=True).expired


def test_not_yet_valid():
    root = pki.meshsite_root()
    future = pki.issue(root, callsign="W1NEW", not_before=NOW + 10 * pki.DAY)
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(future.cert, future.chain, [root.cert], now=NOW)
    assert code_of(excinfo) == "not_yet_valid"


def test_ca_must_have_been_valid_when_it_issued():
    user = pki.lotw_user("W1LATE", not_before=NOW - 10 * pki.DAY)  # after the CA expired
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, user.chain, [pki.lotw_root().cert], now=NOW)
    assert code_of(excinfo) == "issued_outside_ca_validity"


def test_lotw_chain_validates_although_production_ca_expired():
    user = pki.lotw_user("W1AW")
    result = validate_chain(user.cert, user.chain, [pki.lotw_root().cert], now=NOW)
    assert [fingerprint(c) for c in result.path] == [fingerprint(user.cert)] + [
        fingerprint(c) for c in user.chain]
    assert result.expired is False


def test_blacklisted_intermediate():
    root, user = pki.meshsite_chain("DL1BOB")
    banned = fingerprint(user.chain[0])
    with pytest.raises(CertificateError) as excinfo:
        validate_chain(user.cert, user.chain, [root.cert], now=NOW,
                       is_blacklisted=lambda fp: fp == banned)
    assert code_of(excinfo) == "blacklisted"


def test_signatures_of_every_key_type():
    message = b"nonce and station key"
    for who in (pki.lotw_user("W1AW"), pki.meshsite_chain("DL1BOB", "ed25519")[1],
                pki.meshsite_chain("G4CAR", "ec")[1]):
        import base64
        signature = base64.b64decode(who.sign(message))
        verify_signature(who.cert.public_key(), signature, message)
        with pytest.raises(CertificateError) as excinfo:
            verify_signature(who.cert.public_key(), signature, message + b"!")
        assert code_of(excinfo) == "bad_proof"


def test_rsa_pss_signature_is_accepted():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    user = pki.lotw_user("W1AW")
    signature = user.key.sign(b"m", padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                salt_length=32), hashes.SHA256())
    verify_signature(user.cert.public_key(), signature, b"m")


def test_to_pem_roundtrip():
    user = pki.lotw_user("W1AW")
    assert fingerprint(load_certificates(to_pem(user.cert)).certificate) == fingerprint(user.cert)
