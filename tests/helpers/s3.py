"""A real S3 server for the tests: moto's server mode (Flask, S3 over HTTP) on 127.0.0.1 and a free
port, in a thread of the test process. The project's code reaches it the way it reaches MinIO or
AWS: over HTTP, configured by the AWS_* variables.

The server checks credentials: the fixture creates an IAM user whose policy allows everything on
one bucket (`bucket`) and nothing on another (`locked`), then switches moto's authentication on, so
a wrong key, a wrong secret and a denied bucket each get S3's own refusal."""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

import pytest

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str
    bucket: str = "rubiks"
    locked: str = "locked"  # exists; the user's policy does not allow it

    def env(self, **changes: str) -> dict[str, str]:
        """The AWS_* variables that point the project at this server as its user (`changes` override)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true", **changes}

    def client(self):
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint, region_name=REGION,
                                              aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def upload_tree(self, folder: str, prefix: str) -> str:
        """Every file under `folder` to s3://bucket/prefix/<relative path>; returns that URI."""
        client = self.client()
        for root, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                client.upload_file(path, self.bucket, f"{prefix}/{os.path.relpath(path, folder)}")
        return f"s3://{self.bucket}/{prefix}"

    def put(self, key: str, body: bytes | str) -> str:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server per test session, with its user's credentials and two buckets."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    import requests

    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    setup = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "setup",
             "aws_secret_access_key": "setup"}
    s3, iam = boto3.client("s3", **setup), boto3.client("iam", **setup)
    s3.create_bucket(Bucket="rubiks")
    s3.create_bucket(Bucket="locked")
    iam.create_user(UserName="rubiks")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                      "Resource": ["arn:aws:s3:::rubiks", "arn:aws:s3:::rubiks/*"]}]}
    iam.put_user_policy(UserName="rubiks", PolicyName="rubiks-bucket", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="rubiks")["AccessKey"]
    # from now on every request must be signed by a known key and allowed by its policy
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)
    server.stop()
