"""The GCS emulator (gcp-storage-emulator) on a free loopback port, and a test service-account key."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.processes import free_port

BUCKET = "glimpse-test"
SERVICE_ACCOUNT = "glimpse-proxy@glimpse-test.iam.gserviceaccount.com"


class GcsEmulator:
    def __init__(self) -> None:
        self.port = free_port()
        self.server = create_server("127.0.0.1", self.port, in_memory=True, default_bucket=BUCKET)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self) -> storage.Client:
        return storage.Client(project="glimpse-test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint})


def service_account_key(directory: Path) -> tuple[Path, rsa.RSAPublicKey]:
    """A fresh RSA key in the JSON form Google issues, made in the test; nothing real is signed with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "glimpse-test", "private_key_id": "test-key-1",
            "private_key": pem, "client_email": SERVICE_ACCOUNT, "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token"}
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return path, key.public_key()
