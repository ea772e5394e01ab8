"""The one exception type of the certificates app: a machine code plus a human message.

Plain module (no Django): the pure X.509 code raises it too. The API maps each code to an HTTP
status with `http_status()`.
"""

from __future__ import annotations

# code -> HTTP status used by the API. Everything a client sends wrong is a 400; refusals of an
# otherwise well-formed request are 403; rate limits 429.
HTTP_STATUS: dict[str, int] = {
    "malformed": 400,
    "too_large": 400,
    "chain_too_deep": 400,
    "chain_incomplete": 400,
    "untrusted_root": 400,
    "bad_signature": 400,
    "not_a_ca": 400,
    "path_length_exceeded": 400,
    "expired": 400,
    "not_yet_valid": 400,
    "issued_outside_ca_validity": 400,
    "blacklisted": 400,
    "bad_callsign": 400,
    "callsign_mismatch": 400,
    "bad_proof": 400,
    "bad_password": 400,
    "bad_nonce": 400,
    "bad_csr": 400,
    "bad_credential": 400,
    "bad_key": 400,
    "bad_request": 400,
    "not_a_ca_station": 403,
    "not_authorised": 403,
    "already_claimed": 403,
    "not_claimed": 409,
    "not_found": 404,
    "rate_limited": 429,
}


class CertificateError(Exception):
    """A refused certificate, chain, proof or request. `.code` is one of `HTTP_STATUS`'s keys."""

    def __init__(self, code: str, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)
