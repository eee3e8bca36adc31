"""One redaction for every user-facing message: each kind of URL the CLI takes, with credentials in it,
comes out with the password masked and the rest (scheme, user, host, port, path) kept."""
from __future__ import annotations

import pytest

from rubiks_service.cli._common import user_error
from rubiks_service.redact import redact

PW = "Pa55-w0rd_x"

URLS = [  # (what the CLI takes it as, the URL given, as it must be shown)
    ("--tracking-uri http", f"http://alice:{PW}@mlflow:5000", "http://alice:***@mlflow:5000"),
    ("--tracking-uri https", f"https://alice:{PW}@mlflow.example.org/api", "https://alice:***@mlflow.example.org/api"),
    ("--tracking-uri database", f"postgresql+psycopg://rubiks:{PW}@db:5432/mlflow",
     "postgresql+psycopg://rubiks:***@db:5432/mlflow"),
    ("--queue-url postgresql", f"postgresql://rubiks:{PW}@127.0.0.1:5432/rubiks", "postgresql://rubiks:***@127.0.0.1:5432/rubiks"),
    ("--queue-url without a scheme", f"rubiks:{PW}@127.0.0.1:5432/rubiks", "rubiks:***@127.0.0.1:5432/rubiks"),
    ("--queue-url libpq keywords", f"host=db user=rubiks password={PW} dbname=q", "host=db user=rubiks password=*** dbname=q"),
    ("--address dashboard", f"http://ops:{PW}@ray-head:8265", "http://ops:***@ray-head:8265"),
    ("--address ray client", f"ray://ops:{PW}@ray-head:10001", "ray://ops:***@ray-head:10001"),
    ("s3 presigned URL", f"https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=AKIA1/x&X-Amz-Signature={PW}&v=1",
     "https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=***&X-Amz-Signature=***&v=1"),
    ("s3 endpoint with keys", f"http://minio:{PW}@127.0.0.1:9000/bucket", "http://minio:***@127.0.0.1:9000/bucket"),
    ("a bearer token", f"Authorization: Bearer {PW}", "Authorization: Bearer ***"),
    ("a token in a query", f"http://h/api?token={PW}&page=2", "http://h/api?token=***&page=2"),
]


@pytest.mark.parametrize("kind, given, shown", URLS, ids=[u[0] for u in URLS])
def test_each_kind_of_url_is_masked(kind, given, shown):
    assert redact(f"cannot reach {given}: refused") == f"cannot reach {shown}: refused"


@pytest.mark.parametrize("text", ["sqlite:////home/u/runs/mlflow.db", "runs:/0a1b2c/model", "models:/rubiks@best-accuracy",
                                  "http://127.0.0.1:5000/#/experiments/1", "s3://bucket/runs/train.csv",
                                  "data.crop_size: Input should be less than or equal to 1024"])
def test_text_without_credentials_is_unchanged(text):
    assert redact(text) == text


def test_secrets_this_process_holds_are_masked_anywhere(monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "4f1c0ffee00d")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/home/u/.ray/auth_token")  # where a secret is: shown
    assert redact("job failed: token 4f1c0ffee00d refused (hunter2hunter2)") == "job failed: token *** refused (***)"
    assert redact("chmod 600 /home/u/.ray/auth_token") == "chmod 600 /home/u/.ray/auth_token"
    assert user_error("submit", "bad\nmulti-line postgresql://u:hunter2hunter2@h/db") == 2
    assert capsys.readouterr().err == "rubiks submit: bad multi-line postgresql://u:***@h/db\n"
