"""Secrets that guard the proxy: the custom-LLM bearer key, session upload tokens, signed image URLs.

All comparisons are constant-time. Tokens and signatures are HMAC-SHA256 over a purpose-tagged
message, so an image signature can never be replayed as an upload token or the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import NotAuthenticated, NotPermitted


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check_bearer(authorization: str | None, expected_key: str) -> None:
    """NotAuthenticated unless `Authorization: Bearer <expected_key>`; no key configured means open."""
    if not expected_key:
        return
    scheme, _, presented = (authorization or "").partition(" ")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected_key.encode())):
        raise NotAuthenticated("Missing or invalid bearer token for the custom LLM endpoint.", challenge="Bearer")


@dataclass(frozen=True)
class SignedValue:
    value: str
    expires_at: int


class Signer:
    """HMAC signatures with an expiry, for upload tokens and image URLs."""

    def __init__(self, secret: bytes, now: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("signing secret must be at least 16 bytes")
        self._secret = secret
        self._now = now

    def _mac(self, purpose: str, subject: str, expires_at: int) -> str:
        message = f"{purpose}\n{subject}\n{expires_at}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def _verify(self, purpose: str, subject: str, expires_at: int, signature: str) -> bool:
        expected = self._mac(purpose, subject, expires_at)
        return hmac.compare_digest(expected.encode(), signature.encode()) and expires_at >= self._now()

    def upload_token(self, session_id: str, ttl_seconds: int) -> SignedValue:
        expires_at = int(self._now()) + ttl_seconds
        return SignedValue(f"{expires_at}.{self._mac('upload', session_id, expires_at)}", expires_at)

    def check_upload_token(self, session_id: str, token: str | None) -> None:
        """NotPermitted for a token of another session, a forged one or an expired one; NotAuthenticated when absent."""
        if not token:
            raise NotAuthenticated("An upload token is required: get one from GET /v1/session.",
                                   code="missing_upload_token")
        expires, _, signature = token.partition(".")
        if not (expires.isascii() and expires.isdigit() and signature
                and self._verify("upload", session_id, int(expires), signature)):
            raise NotPermitted("The upload token is not valid for this session or has expired.",
                               code="invalid_upload_token")

    def image_query(self, image_id: str, ttl_seconds: int) -> SignedValue:
        expires_at = int(self._now()) + ttl_seconds
        return SignedValue(f"expires={expires_at}&sig={self._mac('image', image_id, expires_at)}", expires_at)

    def image_signature_valid(self, image_id: str, expires: str | None, signature: str | None) -> bool:
        if not (expires and expires.isascii() and expires.isdigit() and signature):
            return False
        return self._verify("image", image_id, int(expires), signature)
