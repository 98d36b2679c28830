from __future__ import annotations

import pytest

from glimpse.auth import Signer, check_bearer, presents_key
from glimpse.errors import GlimpseError
from glimpse.web.errors import status_for


def test_bearer() -> None:
    check_bearer(None, "")  # no key configured: open
    check_bearer("Bearer k3y", "k3y")
    check_bearer("bearer k3y", "k3y")
    for header in (None, "", "Bearer", "Bearer k3", "Token k3y", "Bearer k3yy"):
        with pytest.raises(GlimpseError) as info:
            check_bearer(header, "k3y")
        assert status_for(info.value) == 401


def test_presents_key() -> None:
    """What the rate limits ask (a keyed turn is ElevenLabs): never true without a key configured."""
    assert presents_key("Bearer k3y", "k3y") and presents_key("bearer  k3y ", "k3y")
    for header in (None, "", "Bearer", "Bearer k3", "Token k3y", "Bearer k3yy", "Bearer \udcff"):
        assert not presents_key(header, "k3y")
    assert not presents_key("Bearer ", "") and not presents_key(None, "")


def test_upload_token_bound_to_session_and_expiry() -> None:
    now = [1000.0]
    signer = Signer(b"x" * 32, now=lambda: now[0])
    token = signer.upload_token("s1", 60).value
    signer.check_upload_token("s1", token)
    with pytest.raises(GlimpseError) as info:
        signer.check_upload_token("s2", token)
    assert status_for(info.value) == 403
    now[0] += 61
    with pytest.raises(GlimpseError):
        signer.check_upload_token("s1", token)


def test_image_signature_purpose_separation() -> None:
    signer = Signer(b"y" * 32)
    token = signer.upload_token("abc.jpg", 60).value
    expires, _, sig = token.partition(".")
    assert not signer.image_signature_valid("abc.jpg", expires, sig)  # an upload token is no image signature
    query = dict(p.split("=") for p in signer.image_query("abc.jpg", 60).value.split("&"))
    assert signer.image_signature_valid("abc.jpg", query["expires"], query["sig"])
    assert not signer.image_signature_valid("abd.jpg", query["expires"], query["sig"])


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        Signer(b"short")
