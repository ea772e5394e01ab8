"""The catalog's errors: each carries an API error code and a human explanation. No Django
imports (the pure modules raise them too)."""

from __future__ import annotations


class CodedError(Exception):
    """`.code` is the API error code (`bad_path`, `too_large`, ...), `.detail` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
