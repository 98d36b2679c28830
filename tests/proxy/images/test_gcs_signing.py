"""Which credentials sign a GCS image URL: those the Google chain (`google.auth.default()`) gave the storage client
Glimpse made, asked for once, never the client's private `_credentials`; a service-account key signs locally,
workload identity through IAM with a fresh token."""

from __future__ import annotations

from typing import Any

import google.auth
import pytest
from google.cloud import storage as gcs

from glimpse.images import gcs as gcs_module
from glimpse.images.gcs import SIGNING_SCOPES, GcsStorage


class KeyCredentials:
    """A service-account key: signs locally."""

    signer_email = "glimpse@project.iam.gserviceaccount.com"

    def sign_bytes(self, message: bytes) -> bytes:
        return b"signature"


class MetadataCredentials:
    """Workload identity: an access token from the metadata server, no key."""

    service_account_email = "glimpse-pod@project.iam.gserviceaccount.com"

    def __init__(self) -> None:
        self.valid, self.token, self.refreshed = False, None, 0

    def refresh(self, request: Any) -> None:
        self.valid, self.token, self.refreshed = True, f"ya29.token-{self.refreshed + 1}", self.refreshed + 1


class Blob:
    def __init__(self, signed: list[dict[str, Any]]) -> None:
        self.signed = signed

    def generate_signed_url(self, **arguments: Any) -> str:
        self.signed.append(arguments)
        return "https://storage.example/signed"


class Client:
    """Only what signing needs: no `_credentials` at all."""

    def __init__(self) -> None:
        self.signed: list[dict[str, Any]] = []

    def bucket(self, name: str) -> Client:
        return self

    def blob(self, key: str) -> Blob:
        return Blob(self.signed)


def chain(monkeypatch: pytest.MonkeyPatch, credentials: object) -> list[Any]:
    """`google.auth.default` answering `credentials`; the scopes of each call."""
    asked: list[Any] = []

    def default(scopes: Any = None, **_: Any) -> tuple[object, str]:
        asked.append(scopes)
        return credentials, "project"

    monkeypatch.setattr(google.auth, "default", default)
    return asked


async def test_a_service_account_key_signs_locally_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    key = KeyCredentials()
    asked = chain(monkeypatch, key)
    client = Client()
    storage = GcsStorage("bucket", "glimpse", client=client)
    assert await storage.signed_url("glimpse/s/a.jpg", 600) == "https://storage.example/signed"
    await storage.signed_url("glimpse/s/b.jpg", 600)
    assert [arguments.pop("credentials") for arguments in client.signed] == [key, key]
    assert asked == [SIGNING_SCOPES]


async def test_workload_identity_signs_through_iam_with_a_fresh_token(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = MetadataCredentials()
    chain(monkeypatch, metadata)
    client = Client()
    storage = GcsStorage("bucket", client=client)
    await storage.signed_url("s/a.jpg", 600)
    await storage.signed_url("s/b.jpg", 600)
    assert [(a["service_account_email"], a["access_token"]) for a in client.signed] == [
        (MetadataCredentials.service_account_email, "ya29.token-1")] * 2
    assert metadata.refreshed == 1  # refreshed only when no longer valid


async def test_given_signing_credentials_are_used_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = chain(monkeypatch, MetadataCredentials())
    key, client = KeyCredentials(), Client()
    storage = GcsStorage("bucket", client=client, signing_credentials=key)
    await storage.signed_url("s/a.jpg", 60)
    assert client.signed[0]["credentials"] is key and asked == []


async def test_the_client_glimpse_makes_signs_with_its_own_credentials_asked_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = MetadataCredentials()
    asked = chain(monkeypatch, metadata)
    made: list[Client] = []

    class StorageClient(Client):
        SCOPE = gcs.Client.SCOPE

        def __init__(self, credentials: object = None) -> None:
            super().__init__()
            self.credentials = credentials
            made.append(self)

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(gcs_module.storage, "Client", StorageClient)
    storage = GcsStorage("bucket")
    await storage.signed_url("s/a.jpg", 600)
    await storage.signed_url("s/b.jpg", 600)
    assert [client.credentials for client in made] == [metadata]  # one client, made with the chain's credentials
    assert asked == [gcs.Client.SCOPE]  # the chain asked once, with the storage client's scopes
    assert [a["service_account_email"] for a in made[0].signed] == [MetadataCredentials.service_account_email] * 2
