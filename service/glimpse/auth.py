"""Secrets that guard the proxy: the custom-LLM bearer key, session upload tokens and read keys, signed image URLs.

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

from .config import MIN_SIGNING_SECRET_BYTES
from .errors import NotAuthenticated, NotPermitted

# Seconds since the epoch fit in 11 digits until the year 5138; longer is no expiry this proxy wrote (and
# int() of thousands of digits is itself an error).
MAX_EXPIRY_DIGITS = 11


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _bytes(text: str) -> bytes:
    """A header value as the bytes the client sent (aiohttp keeps undecodable bytes as surrogate escapes)."""
    return text.encode("utf-8", "surrogateescape")


def _expiry(text: str | None) -> int | None:
    if not text or len(text) > MAX_EXPIRY_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def presents_key(authorization: str | None, expected_key: str) -> bool:
    """Whether `Authorization` is `Bearer <expected_key>` (compared in constant time); never with no key set."""
    if not expected_key:
        return False
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(_bytes(presented.strip()), expected_key.encode())


def check_bearer(authorization: str | None, expected_key: str) -> None:
    """NotAuthenticated unless `Authorization: Bearer <expected_key>`; no key configured means open."""
    if expected_key and not presents_key(authorization, expected_key):
        raise NotAuthenticated("Missing or invalid bearer token for the custom LLM endpoint.", challenge="Bearer")


@dataclass(frozen=True)
class SignedValue:
    value: str
    expires_at: int


class Signer:
    """HMAC signatures with an expiry, for upload tokens and image URLs."""

    def __init__(self, secret: bytes, now: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SIGNING_SECRET_BYTES:
            raise ValueError(f"signing secret must be at least {MIN_SIGNING_SECRET_BYTES} bytes")
        self._secret = secret
        self._now = now

    def _mac(self, purpose: str, subject: str, expires_at: int) -> str:
        message = f"{purpose}\n{subject}\n{expires_at}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def _verify(self, purpose: str, subject: str, expires_at: int, signature: str) -> bool:
        expected = self._mac(purpose, subject, expires_at)
        return hmac.compare_digest(expected.encode(), _bytes(signature)) and expires_at >= self._now()

    def upload_token(self, session_id: str, ttl_seconds: int) -> SignedValue:
        expires_at = int(self._now()) + ttl_seconds
        return SignedValue(f"{expires_at}.{self._mac('upload', session_id, expires_at)}", expires_at)

    def check_upload_token(self, session_id: str, token: str | None) -> None:
        """NotPermitted for a token of another session, a forged one or an expired one; NotAuthenticated when absent."""
        if not token:
            raise NotAuthenticated("An upload token is required: get one from GET /v1/session.",
                                   code="missing_upload_token")
        expires, _, signature = token.partition(".")
        expires_at = _expiry(expires)
        if not (expires_at is not None and signature and self._verify("upload", session_id, expires_at, signature)):
            raise NotPermitted("The upload token is not valid for this session or has expired.",
                               code="invalid_upload_token")

    def session_key(self, session_id: str) -> str:
        """What a chat turn shows to read `session_id`'s images: only the page that created the session has it (it
        travels in the turn's `elevenlabs_extra_body`). It has no expiry of its own: the conversation's store TTL
        bounds it."""
        return self._mac("session-key", session_id, 0)

    def session_key_valid(self, session_id: str, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        return hmac.compare_digest(self.session_key(session_id).encode(), _bytes(key))

    def image_query(self, image_id: str, ttl_seconds: int) -> SignedValue:
        expires_at = int(self._now()) + ttl_seconds
        return SignedValue(f"expires={expires_at}&sig={self._mac('image', image_id, expires_at)}", expires_at)

    def image_signature_valid(self, image_id: str, expires: str | None, signature: str | None) -> bool:
        expires_at = _expiry(expires)
        if expires_at is None or not signature:
            return False
        return self._verify("image", image_id, expires_at, signature)
