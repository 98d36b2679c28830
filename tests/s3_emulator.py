"""moto's S3 server (moto[server], in a thread) on a free loopback port, and the standard AWS variables a deployment
would set, with test credentials: nothing reaches AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client

BUCKET = "glimpse-test"
REGION = "eu-west-1"
ACCESS_KEY = "AKIAGLIMPSETEST00001"
SECRET_KEY = "glimpse-test-secret-key-0123456789abcdefgh"


class S3Emulator:
    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Emulator:
        self.server.start()
        self.port = self.server.get_host_and_port()[1]
        self.reset()
        self.client().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        return self

    def stop(self) -> None:
        """Stop and close the listening socket: a connection is refused from now on, as with a store that is down."""
        if self.server._server is not None:  # the thread's werkzeug server
            self.server.stop()
            self.server._server.server_close()
            self.server._server = None

    def reset(self) -> None:
        """moto's backends are per process, not per server: forget every bucket (POST /moto-api/reset)."""
        requests.post(self.endpoint + "/moto-api/reset", timeout=5).raise_for_status()

    def client(self) -> S3Client:
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint, region_name=REGION,
                                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def access_key(self, user: str = "glimpse-proxy") -> tuple[str, str]:
        """An IAM user's access key id and secret, the user allowed every S3 action on the bucket (as a MinIO or R2
        key is): (moto's IAM, on the same server)."""
        iam = boto3.session.Session().client("iam", endpoint_url=self.endpoint, region_name=REGION,
                                             aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(UserName=user, PolicyName="glimpse-bucket", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": [
                f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}))
        return key["AccessKeyId"], key["SecretAccessKey"]

    @contextmanager
    def checking_signatures(self) -> Iterator[None]:
        """While inside, the server refuses what S3 refuses: a request signed with an access key id it does not know
        (403 InvalidAccessKeyId) or with the wrong secret (403 SignatureDoesNotMatch), per the S3 API Reference's
        error codes. moto skips these checks by default; its server's /moto-api/reset-auth turns them on (a count of
        requests let through first: 0) and back off, process-wide."""
        answer = requests.post(self.endpoint + "/moto-api/reset-auth", data=b"0", timeout=5)
        answer.raise_for_status()
        try:
            yield
        finally:
            previous = answer.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
            requests.post(self.endpoint + "/moto-api/reset-auth", data=previous.encode(), timeout=5).raise_for_status()

    def objects(self) -> dict[str, int]:
        """Every object in the bucket: key → size."""
        listing = self.client().list_objects_v2(Bucket=BUCKET)
        return {entry["Key"]: entry["Size"] for entry in listing.get("Contents", [])}


def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standard chain's variables, test values only; no profile, config file or instance metadata is read."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
